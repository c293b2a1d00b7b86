// Runs every benchmark in turn (never two at once: the machine has two cores) and prints their
// tables. Usage: pnpm bench [name ...]   e.g. pnpm bench matmul model
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ALL = ['matmul', 'conv', 'model', 'optimizer', 'train', 'cnn', 'gpt', 'threads', 'ps', 'data', 'ctr'];
const chosen = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ALL;
let failed = 0;
for (const name of chosen) {
  if (!ALL.includes(name)) {
    console.error(`unknown benchmark '${name}' (choose from ${ALL.join(', ')})`);
    process.exit(2);
  }
  console.log(`\n=== bench/${name}.js ===`);
  const r = spawnSync(process.execPath, [fileURLToPath(new URL(`./${name}.js`, import.meta.url))], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed > 0 ? 1 : 0);
