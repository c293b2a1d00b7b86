// What is particular to the native backend: the install-time build and its fallback where no
// compiler is present, batched products, argument checks that keep the addon inside its arrays,
// and worker threads. Its arithmetic is tested with every other backend's in matmul.test.ts.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { batchedMatmul } from './backend.js';
import { jsBackend } from './matmul.js';
import { matmulReference } from './matmul-reference.js';
import { loadNativeBackend, nativeLoadError, nativePath } from './native-backend.js';
import { defaultBackend } from './select.js';
import { relaxedWasmPath, wasmPath } from './wasm-backend.js';

const pkg = fileURLToPath(new URL('../../', import.meta.url));
const script = join(pkg, 'scripts', 'build-native.js');

/** Which file on PATH `name` resolves to, or null. */
function which(name: string): string | null {
  for (const d of (process.env.PATH ?? '').split(delimiter)) if (d && existsSync(join(d, name))) return join(d, name);
  return null;
}

describe('the build where no compiler is present', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-native-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // A copy of the package's native sources, so a failed build cannot touch the real one.
  const copy = join(dir, 'pkg');
  mkdirSync(copy);
  cpSync(join(pkg, 'binding.gyp'), join(copy, 'binding.gyp'));
  cpSync(join(pkg, 'native'), join(copy, 'native'), { recursive: true });
  // A PATH with node, python3 and make but no cc, gcc, clang, c++ or g++.
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  for (const tool of ['python3', 'make', 'sh']) {
    const at = which(tool);
    if (at !== null) symlinkSync(at, join(bin, tool));
  }
  const env: Record<string, string> = { PATH: bin, HOME: dir };

  it('succeeds anyway, prints why once, and leaves no addon behind', () => {
    const run = spawnSync(process.execPath, [script, `--dir=${copy}`], { env, encoding: 'utf8' });
    expect(run.status).toBe(0);
    const said = `${run.stdout}${run.stderr}`;
    expect(said.match(/native backend not built/g)).toHaveLength(1);
    expect(said).toContain('no C compiler on PATH');
    expect(said).toContain('Loom will use the WebAssembly backend');
    expect(existsSync(join(copy, 'build', 'Release', 'loom_native.node'))).toBe(false);
  });

  it.skipIf(which('make') === null || which('python3') === null)('a compiler that fails: node-gyp fails, the install still succeeds and says so once', () => {
    const run = spawnSync(process.execPath, [script, `--dir=${copy}`], { env: { ...env, CC: '/bin/false', CXX: '/bin/false' }, encoding: 'utf8' });
    expect(run.status).toBe(0);
    const said = `${run.stdout}${run.stderr}`;
    expect(said.match(/native backend not built/g)).toHaveLength(1);
    expect(said).toContain('node-gyp rebuild failed');
    expect(existsSync(join(copy, 'build', 'Release', 'loom_native.node'))).toBe(false);
  }, 60_000);

  it('then Loom falls back: auto picks WebAssembly, and LOOM_BACKEND=native says why it cannot', () => {
    const missing = join(copy, 'build', 'Release', 'loom_native.node');
    expect(loadNativeBackend({ path: missing })).toBeNull();
    expect(nativeLoadError).toContain('is missing');
    const fallback = existsSync(relaxedWasmPath) ? 'wasm-relaxed-simd' : existsSync(wasmPath) ? 'wasm-simd' : 'js';
    expect(defaultBackend('auto', missing).name).toBe(fallback);
    expect(() => defaultBackend('native', missing)).toThrow(/LOOM_BACKEND: 'native' expects the native addon to load, but .*loom_native\.node is missing/);
  });
});

describe.skipIf(!existsSync(nativePath))('the native addon', () => {
  const native = loadNativeBackend()!;
  const seq = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed + i * 0.731));

  it('batched products: each against the reference, with a shared (stride 0) operand, accumulating', () => {
    const [batch, m, k, n] = [5, 7, 33, 19];
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const a = seq(batch * m * k, 1); // batch × (M, K) or (K, M)
      const b = seq(k * n, 2); // one (K, N) or (N, K), shared: stride 0
      const out = seq(batch * m * n + 3, 3); // batch × (M, N), and 3 floats past the end
      const want = out.slice();
      for (let i = 0; i < batch; i++) {
        matmulReference(a.subarray(i * m * k), b, want.subarray(i * m * n), m, k, n, transA, transB, true);
      }
      batchedMatmul(native, a, b, out, batch, m, k, n, transA, transB, true, m * k, 0, m * n);
      for (let i = 0; i < want.length; i++) expect(out[i]).toBeCloseTo(want[i]!, 4);
      // The fallback loop over matmul gives the same products.
      const viaJs = seq(batch * m * n + 3, 3);
      batchedMatmul(jsBackend, a, b, viaJs, batch, m, k, n, transA, transB, true, m * k, 0, m * n);
      for (let i = 0; i < want.length; i++) expect(viaJs[i]).toBeCloseTo(want[i]!, 4);
    }
  });

  it('refuses, touching nothing, sizes that would read or write past an array, and non-Float32Arrays', () => {
    const a = new Float32Array(6), b = new Float32Array(9), out = new Float32Array(4).fill(7);
    expect(() => native.matmul(a, b, out, 2, 3, 3, false, false, false)).toThrow('matmul (native): out: expected at least 6 elements for these sizes, got 4');
    expect(() => native.matmul(a, b, out, 2, 4, 2, false, false, false)).toThrow('matmul (native): a: expected at least 8 elements');
    expect(() => native.matmul(a, new Float64Array(9) as unknown as Float32Array, out, 2, 3, 2, false, false, false)).toThrow('matmul (native): b: expected a Float32Array');
    expect(() => native.matmul(a, b, out, -1, 3, 2, false, false, false)).toThrow('matmul (native): m: expected an integer in [0, 2^31)');
    expect(() => native.matmulBatched(a, b, out, 2, 1, 3, 2, false, false, false, 3, 0, 3)).toThrow('out: expected at least 5 elements');
    expect([...out]).toEqual([7, 7, 7, 7]);
  });

  it('works in worker threads: each loads its own instance and multiplies in place in a SharedArrayBuffer and a shared WebAssembly memory', async () => {
    const [m, k, n] = [40, 70, 50];
    const floats = m * k + k * n + m * n;
    const sab = new SharedArrayBuffer(4 * 2 * floats);
    const memory = new WebAssembly.Memory({ initial: 2, maximum: 16, shared: true });
    // Each worker multiplies its own (a, b) in one of the two shared buffers into `out` beside them.
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      const { createRequire } = require('node:module');
      const addon = createRequire(workerData.from)(workerData.addon);
      const { buffer, at, m, k, n } = workerData;
      const a = new Float32Array(buffer, at, m * k);
      const b = new Float32Array(buffer, a.byteOffset + a.byteLength, k * n);
      const out = new Float32Array(buffer, b.byteOffset + b.byteLength, m * n);
      for (let r = 0; r < 50; r++) addon.matmul(0, a, b, out, m, k, n, false, true, false);
      parentPort.postMessage(addon.isas[0]);`;
    const jobs: { buffer: SharedArrayBuffer; at: number }[] = [
      { buffer: sab, at: 0 },
      { buffer: sab, at: 4 * floats },
      { buffer: memory.buffer as unknown as SharedArrayBuffer, at: 64 },
    ];
    for (const [i, { buffer, at }] of jobs.entries()) {
      new Float32Array(buffer, at, m * k).set(seq(m * k, i));
      new Float32Array(buffer, at + 4 * m * k, k * n).set(seq(k * n, 10 + i));
    }
    const isas = await Promise.all(jobs.map(({ buffer, at }) => new Promise((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { from: import.meta.url, addon: fileURLToPath(nativePath), buffer, at, m, k, n } });
      w.once('message', resolve);
      w.once('error', reject);
    })));
    expect(isas).toEqual(jobs.map(() => native.name.slice('native-'.length)));
    for (const [i, { buffer, at }] of jobs.entries()) {
      const want = new Float32Array(m * n);
      matmulReference(seq(m * k, i), seq(k * n, 10 + i), want, m, k, n, false, true, false);
      const got = new Float32Array(buffer, at + 4 * (m * k + k * n), m * n);
      for (let j = 0; j < want.length; j++) expect(got[j]).toBeCloseTo(want[j]!, 4);
    }
    // The main thread's instance outlives the workers'.
    const out = new Float32Array(4);
    native.matmul(new Float32Array([1, 2, 3, 4]), new Float32Array([1, 0, 0, 1]), out, 2, 2, 2, false, false, false);
    expect([...out]).toEqual([1, 2, 3, 4]);
  });
});
