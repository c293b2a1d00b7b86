#!/usr/bin/env node
/**
 * The `loom` command. Exit codes: 0 success, 1 runtime failure, 2 usage error (bad flag or value),
 * 130 interrupted by SIGINT (after writing the model trained so far).
 */
import { EXIT, UsageError } from './errors.js';
import { trainCommand } from './commands/train.js';
import { evalCommand } from './commands/eval.js';
import { recommendCommand } from './commands/recommend.js';
import { demoCommand } from './commands/demo.js';
import { serveCommand } from './commands/serve.js';
import { workerCommand } from './commands/worker.js';
import { launchCommand } from './commands/launch.js';
import { generateCommand } from './commands/generate.js';
import { dashboardCommand } from './commands/dashboard.js';
import { plotCommand } from './commands/plot.js';

const COMMANDS: Record<string, { run: (argv: string[]) => unknown; summary: string }> = {
  train: { run: trainCommand, summary: 'train a model and write a run directory' },
  eval: { run: evalCommand, summary: 'evaluate a run: loss, accuracy, precision/recall, confusion matrix' },
  recommend: { run: recommendCommand, summary: 'recommend news to a user of the built-in dataset' },
  demo: { run: demoCommand, summary: 'train the news recommender and show recommendations (pnpm start)' },
  serve: { run: serveCommand, summary: 'run a parameter server owning one key range, over WebSocket' },
  worker: { run: workerCommand, summary: 'train as one worker of a cluster, against parameter servers' },
  generate: { run: generateCommand, summary: 'continue a prompt with a language model run, streaming the text' },
  dashboard: { run: dashboardCommand, summary: 'watch runs train in the browser: curves, workers, servers, checkpoints' },
  plot: { run: plotCommand, summary: 'draw runs\' curves into an SVG or PNG picture' },
  launch: { run: launchCommand, summary: 'train across machines: the same command on every node, or started over ssh from a hostfile' },
};

const USAGE = `Usage: loom <command> [flags]

Commands:
${Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(10)} ${c.summary}`).join('\n')}

Run \`loom <command> --help\` for a command's flags.
Exit codes: 0 success, 1 runtime failure, 2 usage error, 130 interrupted (model written).`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    return command === undefined ? EXIT.usage : EXIT.ok;
  }
  const entry = COMMANDS[command];
  if (entry === undefined) {
    console.error(`loom: unknown command '${command}'\n\n${USAGE}`);
    return EXIT.usage;
  }
  try {
    const result = await entry.run(rest);
    return (result as { interrupted?: boolean } | null)?.interrupted ? EXIT.interrupted : EXIT.ok;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`loom ${command}: ${e.message.replace(/^loom \w+: /, '')}`);
      return EXIT.usage;
    }
    console.error(`loom ${command}: ${(e as Error).message}`);
    if (process.env.LOOM_DEBUG) console.error((e as Error).stack);
    return EXIT.failure;
  }
}

process.exitCode = await main(process.argv.slice(2));
