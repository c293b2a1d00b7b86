// What is particular to the wasm backend: loading (and declining to load), and its linear memory.
// Its arithmetic is tested with every other backend's in matmul.test.ts.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { matmulReference } from './matmul-reference.js';
import { loadWasmBackend, wasmPath } from './wasm-backend.js';

describe('loadWasmBackend', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-wasm-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('returns null, without throwing, when the file is missing', () => {
    expect(loadWasmBackend(join(dir, 'missing.wasm'))).toBeNull();
  });

  it('returns null, without throwing, when the engine cannot compile the file', () => {
    // What an engine without SIMD sees is a module that does not validate; so does this one.
    const bad = join(dir, 'bad.wasm');
    writeFileSync(bad, new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0xff]));
    expect(loadWasmBackend(bad)).toBeNull();
  });
});

// CI builds the wasm before testing: if the file exists it must load.
describe.skipIf(!existsSync(wasmPath))('wasm-simd linear memory', () => {
  it('stays correct as memory grows, and after it has grown, for small and large problems in turn', () => {
    const wasm = loadWasmBackend();
    expect(wasm).not.toBeNull();
    const shapes = [[8, 8, 8], [300, 200, 250], [8, 8, 8], [3, 5, 7], [400, 260, 300], [3, 5, 7], [300, 200, 250]];
    for (const [m, k, n] of shapes as [number, number, number][]) {
      const a = Float32Array.from({ length: m * k }, (_, i) => ((i * 7) % 13) / 13 - 0.5); // (M, K)
      const b = Float32Array.from({ length: k * n }, (_, i) => ((i * 5) % 11) / 11 - 0.5); // (K, N)
      const want = new Float32Array(m * n);
      matmulReference(a, b, want, m, k, n, false, false, false);
      const out = new Float32Array(m * n);
      wasm!.matmul(a, b, out, m, k, n, false, false, false);
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(out[i]! - want[i]!));
      expect(worst).toBeLessThan(1e-5 * Math.sqrt(k) * 10);
    }
  });

  it('two loaded backends have separate memories', () => {
    const one = loadWasmBackend()!;
    const two = loadWasmBackend()!;
    const x = new Float32Array([1, 2, 3, 4]); // (2, 2)
    const eye = new Float32Array([1, 0, 0, 1]);
    const out1 = new Float32Array(4);
    const out2 = new Float32Array(4);
    one.matmul(x, eye, out1, 2, 2, 2, false, false, false);
    two.matmul(eye, eye, out2, 2, 2, 2, false, false, false);
    one.matmul(x, eye, out1, 2, 2, 2, false, false, true);
    expect([...out1]).toEqual([2, 4, 6, 8]);
    expect([...out2]).toEqual([1, 0, 0, 1]);
  });
});
