/**
 * `loom demo`, the main job (`pnpm start`): trains the reference model on the built-in news data,
 * compares it with the baselines, and prints recommendations for a few users.
 */
import { helpText, parseFlags, type Flags } from '../args.js';
import { printRecommendation, recommendFor } from './recommend.js';
import { trainCommand, type TrainResult } from './train.js';

export const DEMO_FLAGS: Flags = {
  out: { type: 'string', arg: 'DIR', default: 'runs/news', help: 'run directory to write' },
  epochs: { type: 'int', default: 5, min: 1, help: 'passes over the training data' },
  users: { type: 'string', arg: 'IDS', default: '3,17,42', help: 'comma-separated user ids to recommend for' },
};

export const DEMO_HELP = helpText('demo', 'Trains the news recommender on the built-in data and recommends news to a few users.', DEMO_FLAGS);

export async function demoCommand(argv: string[], log: (line: string) => void = console.log): Promise<void> {
  const f = parseFlags('demo', argv, DEMO_FLAGS);
  if (f.help) {
    log(DEMO_HELP);
    return;
  }
  const result = (await trainCommand(['--dataset', 'news', '--model', 'reference', '--epochs', String(f.epochs), '--out', f.out as string], log)) as TrainResult;
  if (result.baselines) {
    const margin = result.validAccuracy - Math.max(...Object.values(result.baselines));
    log(`the model beats the best baseline by ${(100 * margin).toFixed(1)} points of validation accuracy`);
  }
  log('\nrecommendations:');
  const users = (f.users as string).split(',').map(Number);
  for (const rec of recommendFor(result.out, users, 3)) printRecommendation(rec, log);
}
