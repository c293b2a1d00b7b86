// The small dataset of the launch tests.
import { writeFileSync } from 'node:fs';

/** A CSV of 3000 distinct rows: 5 features after one-hot, 3 classes that depend on minutes and device. */
export function writeCsv(path: string): void {
  const lines = ['age,minutes,device,label'];
  for (let i = 0; i < 3000; i++) {
    const [age, minutes, device] = [18 + ((i * 7919) % 5000) / 100, (i * 13) % 90, ['mobile', 'desktop', 'tablet'][i % 3]!];
    lines.push(`${age},${minutes},${device},${minutes > 45 ? (device === 'mobile' ? 'video' : 'longread') : 'brief'}`);
  }
  writeFileSync(path, lines.join('\n') + '\n');
}

/** `loom train` flags for it: mlp 5→16→3, 2 epochs of 64-row batches. */
export const trainFlags = (csv: string, epochs = 2): string[] => [
  '--dataset', `csv:${csv}`, '--label', 'label', '--model', 'mlp:5,16,3', '--epochs', String(epochs), '--seed', '5', '--batch-size', '64', '--lr', '0.01',
];
