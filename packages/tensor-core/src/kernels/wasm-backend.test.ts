// What is particular to the wasm backend: loading (and declining to load), and its linear memory.
// Its arithmetic is tested with every other backend's in matmul.test.ts.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { matmulReference } from './matmul-reference.js';
import { WasmBackend, loadRelaxedWasmBackend, loadWasmBackend, wasmPath } from './wasm-backend.js';

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

// Products on a shared memory that another package owns (useSharedMemory): operands there are read
// and written in place, the others copied through the scratch region; either way the same bits as
// the copying path, since both run the same kernel on the same values.
describe.skipIf(!existsSync(wasmPath))('the GEMM on a shared memory', () => {
  for (const load of [loadWasmBackend, loadRelaxedWasmBackend]) {
    it(`${load.name}: every transpose and accumulate, operands in and out of the memory, the same bits as copying`, () => {
      const copying = load() as WasmBackend;
      const shared = load() as WasmBackend;
      const memory = new WebAssembly.Memory({ initial: 64, maximum: 65536, shared: true });
      const scratchAt = 1 << 20, scratchBytes = 2 << 20;
      expect(shared.attach({ memory, scratchAt, scratchBytes })).toBe(true);
      let top = 16; // a bump allocator below the scratch region, unaligned on purpose (offset 16 + 4·i)
      const inMemory = (n: number) => {
        const a = new Float32Array(memory.buffer, top, n);
        top += 4 * n + 4;
        return a;
      };
      const fill = (a: Float32Array, seed: number) => a.forEach((_, i) => (a[i] = Math.sin(seed + i * 0.37)));
      const [m, k, n] = [37, 70, 29];
      let usedMemory = 0;
      for (const transA of [false, true]) for (const transB of [false, true]) for (const accumulate of [false, true]) {
        for (const where of [0b001, 0b010, 0b100, 0b111, 0b000]) {
          top = 16;
          const a = where & 1 ? inMemory(m * k) : new Float32Array(m * k);
          const b = where & 2 ? inMemory(k * n) : new Float32Array(k * n);
          const out = where & 4 ? inMemory(m * n) : new Float32Array(m * n);
          fill(a, 1);
          fill(b, 2);
          fill(out, 3);
          const want = out.slice();
          copying.matmul(a.slice(), b.slice(), want, m, k, n, transA, transB, accumulate);
          const scratch = new Uint8Array(memory.buffer, 16, scratchAt - 16).slice();
          shared.matmul(a, b, out, m, k, n, transA, transB, accumulate);
          expect(out).toEqual(want);
          // Below the scratch region only `out` may change, and only when it lives there.
          const after = new Uint8Array(memory.buffer, 16, scratchAt - 16);
          if (!(where & 4)) expect(Buffer.from(after).equals(Buffer.from(scratch))).toBe(true);
          usedMemory += where === 0 ? 0 : 1;
        }
      }
      expect(usedMemory).toBeGreaterThan(0);
      // The products ran on the shared instance: its packing workspace is in the scratch region.
      expect(new Uint8Array(memory.buffer, scratchAt, scratchBytes).some((x) => x !== 0)).toBe(true);
    });
  }

  it('a product that does not fit the scratch region takes the copying path, with the same result', () => {
    const backend = loadWasmBackend() as WasmBackend;
    const memory = new WebAssembly.Memory({ initial: 8, maximum: 65536, shared: true });
    expect(backend.attach({ memory, scratchAt: 1024, scratchBytes: 4096 })).toBe(true);
    const [m, k, n] = [64, 64, 64];
    const a = new Float32Array(memory.buffer, 8192, m * k).fill(0.5);
    const b = Float32Array.from({ length: k * n }, (_, i) => i % 3);
    const out = new Float32Array(m * n), want = new Float32Array(m * n);
    backend.matmul(a, b, out, m, k, n, false, false, false);
    matmulReference(a.slice(), b, want, m, k, n, false, false, false);
    expect(out).toEqual(want);
    expect(new Uint8Array(memory.buffer, 1024, 4096).every((x) => x === 0)).toBe(true); // scratch untouched
    backend.detach();
  });

  it('declines a memory that is not shared or a scratch region outside it, or when loaded from another module file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loom-wasm-'));
    const copy = join(dir, 'gemm.wasm');
    writeFileSync(copy, readFileSync(wasmPath));
    const memory = new WebAssembly.Memory({ initial: 64, maximum: 65536, shared: true });
    expect((loadWasmBackend(copy) as WasmBackend).attach({ memory, scratchAt: 0, scratchBytes: 1 << 20 })).toBe(false); // no shared build beside it
    rmSync(dir, { recursive: true, force: true });
    const backend = loadWasmBackend() as WasmBackend;
    expect(backend.attach({ memory: new WebAssembly.Memory({ initial: 1 }), scratchAt: 0, scratchBytes: 1024 })).toBe(false);
    expect(backend.attach({ memory: new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true }), scratchAt: 0, scratchBytes: 1 << 20 })).toBe(false);
  });
});
