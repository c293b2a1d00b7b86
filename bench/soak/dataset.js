// The soak's data: a CSV the CLI loads like any other (`--dataset csv:FILE --label label`), made
// here from a seed. Eight numbers in [−1, 1) and a zone (one-hot: 11 features after loading); four
// classes whose scores are linear in the numbers plus x0·x1, sin(3·x2) and the zone, with Gumbel
// noise. A small MLP climbs to about 79% test accuracy over tens of epochs and is still learning —
// unlike test/harness.ts's CSV, which every run fits to 100%, so that "within 1 point of an
// undisturbed run" would say nothing.
import { writeFileSync } from 'node:fs';

/** The model the soak trains on it: 11 features, 32 hidden units, 4 classes. */
export const SOAK_MODEL = 'mlp:11,32,4';

/** mulberry32: a seeded PRNG in [0, 1). */
function random(seed) {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Writes `rows` distinct rows (12,000: 9,600 train / 1,200 valid / 1,200 test once loaded) to `path`. */
export function writeSoakCsv(path, { rows = 12_000, noise = 0.25, seed = 11 } = {}) {
  const rnd = random(seed);
  const weights = Array.from({ length: 4 }, () => Array.from({ length: 8 }, () => rnd() * 2 - 1)); // (4 classes, 8 numbers)
  const zones = ['north', 'south', 'east'];
  const lines = ['x0,x1,x2,x3,x4,x5,x6,x7,zone,label'];
  for (let i = 0; i < rows; i++) {
    const x = Array.from({ length: 8 }, () => rnd() * 2 - 1);
    const zone = Math.floor(rnd() * 3);
    const scores = weights.map((w, k) => {
      let s = w.reduce((acc, wj, j) => acc + wj * x[j], 0);
      if (k === zone) s += 0.6;
      if (k === 1) s += 1.5 * x[0] * x[1];
      if (k === 2) s += Math.sin(3 * x[2]);
      return s - noise * Math.log(-Math.log(rnd() + 1e-12)); // + Gumbel noise: a soft argmax
    });
    lines.push(`${x.map((v) => v.toFixed(4)).join(',')},${zones[zone]},${'abcd'[scores.indexOf(Math.max(...scores))]}`);
  }
  writeFileSync(path, lines.join('\n') + '\n');
}
