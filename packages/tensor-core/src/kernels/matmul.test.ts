// Every matmul backend against the obviously-correct reference, on shapes chosen to land off every
// blocking factor (JS: 4×4 tiles, K blocks of 256; wasm: 4×8 and 4×4 tiles, MC 96, KC 256, NC 512;
// native: 8×32, 6×16 and 4×8 tiles, MC 128–256, KC 256). The native addon runs the suite once per
// code path this CPU has (avx512, avx2, sse on an AVX-512 machine).
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { KernelBackend } from './backend.js';
import { jsBackend } from './matmul.js';
import { matmulReference } from './matmul-reference.js';
import { loadNativeBackend, nativeIsas, nativePath } from './native-backend.js';
import { TINY_NATIVE, defaultBackend, routeTiny } from './select.js';
import { loadRelaxedWasmBackend, loadWasmBackend, relaxedWasmPath, wasmPath } from './wasm-backend.js';

/** A small seeded generator (mulberry32), so failures reproduce. Values in [-1, 1). */
function filled(length: number, seed: number): Float32Array {
  const out = new Float32Array(length);
  let s = seed >>> 0;
  for (let i = 0; i < length; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * 2 - 1;
  }
  return out;
}

/** Expects got ≈ want elementwise, within 1e-5·√k relative to the largest magnitude in want. */
function expectClose(got: Float32Array, want: Float32Array, k: number): void {
  expect(got.length).toBe(want.length);
  let scale = 1;
  for (const w of want) scale = Math.max(scale, Math.abs(w));
  const tol = 1e-5 * Math.sqrt(Math.max(k, 1)) * scale;
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  if (!(worst <= tol)) expect.fail(`element ${at}: got ${got[at]}, want ${want[at]} (|error| ${worst} > ${tol})`);
}

/** [m, k, n]: edge cases, primes, the reference model's layers, and every blocking boundary. */
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 5], // batch 1
  [1, 40, 37], // batch 1, wide: every column block of the few-rows path
  [1, 300, 130], // batch 1 over native's 64-column blocks and 16-float K runs (its M = 1 path)
  [2, 33, 21],
  [3, 2, 1],
  [9, 20, 1], // a single column
  [4, 4, 4],
  [7, 13, 11],
  [65, 129, 33],
  [64, 100, 50], // reference model, layer 1 at batch 64
  [64, 50, 10], // layer 2
  [50, 64, 100], // weight-gradient shape of layer 1
  [9, 300, 6], // K over one K block
  [37, 600, 29], // K over two K blocks
  [101, 17, 9], // M over one wasm A block
  [12, 20, 530], // N over one wasm B block
  [1029, 9, 35], // M over native's pack_a_min_m: a transposed A is packed, in MC blocks
];

const TRANSPOSES: [boolean, boolean][] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

function opName(transA: boolean, transB: boolean): string {
  return `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`;
}

function suite(getBackend: () => KernelBackend): void {
  for (const [m, k, n] of SHAPES) {
    for (const [transA, transB] of TRANSPOSES) {
      it(`${m}×${k}×${n} ${opName(transA, transB)}`, () => {
        const backend = getBackend();
        const a = filled(m * k, m * 7 + k); // (M, K) or (K, M)
        const b = filled(k * n, n * 13 + k); // (K, N) or (N, K)
        const want = new Float32Array(m * n);
        matmulReference(a, b, want, m, k, n, transA, transB, false);

        // Garbage in out must not leak into an overwriting product.
        const out = new Float32Array(m * n).fill(Number.NaN);
        backend.matmul(a, b, out, m, k, n, transA, transB, false);
        expectClose(out, want, k);

        // accumulate: out += op(a)·op(b), starting from values that are not zero.
        const start = filled(m * n, 99);
        const acc = start.slice();
        const wantAcc = start.slice();
        matmulReference(a, b, wantAcc, m, k, n, transA, transB, true);
        backend.matmul(a, b, acc, m, k, n, transA, transB, true);
        expectClose(acc, wantAcc, k);
      });
    }
  }

  it('k = 0: out is zeroed, or left alone when accumulating', () => {
    const backend = getBackend();
    const out = new Float32Array(6).fill(3);
    backend.matmul(new Float32Array(0), new Float32Array(0), out, 2, 0, 3, false, false, true);
    expect([...out]).toEqual([3, 3, 3, 3, 3, 3]);
    backend.matmul(new Float32Array(0), new Float32Array(0), out, 2, 0, 3, false, false, false);
    expect([...out]).toEqual([0, 0, 0, 0, 0, 0]);
  });

  for (const shared of [false, true]) {
    it(`operands are views at a nonzero offset into a larger ${shared ? 'SharedArrayBuffer' : 'ArrayBuffer'}`, () => {
      const backend = getBackend();
      const [m, k, n] = [13, 21, 10];
      const bytes = 4 * (3 + m * k + 5 + k * n + 7 + m * n + 11);
      const buffer = shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
      const whole = new Float32Array(buffer);
      whole.fill(Number.NaN); // the gaps: a read outside any view would show up as NaN
      const a = new Float32Array(buffer, 4 * 3, m * k);
      const b = new Float32Array(buffer, a.byteOffset + a.byteLength + 4 * 5, k * n);
      const out = new Float32Array(buffer, b.byteOffset + b.byteLength + 4 * 7, m * n);
      for (const [transA, transB] of TRANSPOSES) {
        a.set(filled(m * k, 1));
        b.set(filled(k * n, 2));
        out.set(filled(m * n, 3));
        const want = out.slice();
        matmulReference(a, b, want, m, k, n, transA, transB, true);
        backend.matmul(a, b, out, m, k, n, transA, transB, true);
        expectClose(out, want, k);
      }
      // Nothing outside the three views was written.
      const tail = new Float32Array(buffer, out.byteOffset + out.byteLength);
      expect(tail.every(Number.isNaN)).toBe(true);
      expect(Number.isNaN(whole[0]!)).toBe(true);
    });
  }

  it('operand arrays longer than their matrix: only the first M·K, K·N, M·N elements are used', () => {
    const backend = getBackend();
    const [m, k, n] = [5, 6, 7];
    const a = filled(m * k + 4, 1);
    const b = filled(k * n + 4, 2);
    const out = new Float32Array(m * n + 4).fill(-1);
    const want = out.slice();
    matmulReference(a, b, want, m, k, n, false, true, false);
    backend.matmul(a, b, out, m, k, n, false, true, false);
    expectClose(out, want, k);
    expect([...out.subarray(m * n)]).toEqual([-1, -1, -1, -1]);
  });
}

describe('jsBackend', () => {
  it('is named js', () => expect(jsBackend.name).toBe('js'));
  suite(() => jsBackend);
});

// CI builds the wasm before testing, so a wasm file that exists but does not load is a failure;
// only a package that was never built skips these.
describe.skipIf(!existsSync(wasmPath))('wasm-simd backend', () => {
  const wasm = loadWasmBackend();
  it('loads, since wasm/gemm.wasm exists', () => {
    expect(wasm).not.toBeNull();
    expect(wasm!.name).toBe('wasm-simd');
  });
  suite(() => {
    if (wasm === null) throw new Error(`wasm/gemm.wasm exists at ${wasmPath.pathname} but did not load`);
    return wasm;
  });
});

// The same source built with relaxed SIMD: fused multiply-adds round once, so its products differ
// from wasm-simd's in the last bits, well inside the suite's tolerance. Node 20 and later load it.
describe.skipIf(!existsSync(relaxedWasmPath))('wasm-relaxed-simd backend', () => {
  const wasm = loadRelaxedWasmBackend();
  it('loads, since wasm/gemm-relaxed.wasm exists', () => {
    expect(wasm).not.toBeNull();
    expect(wasm!.name).toBe('wasm-relaxed-simd');
  });
  suite(() => {
    if (wasm === null) throw new Error(`wasm/gemm-relaxed.wasm exists at ${relaxedWasmPath.pathname} but did not load`);
    return wasm;
  });
});

// One run of the suite per code path the addon offers on this CPU. The install builds the addon
// where a C compiler is present; where it is missing these are skipped (native-fallback.test.ts
// covers that case), and under CI, which installs a compiler, a missing addon fails the first test.
describe.skipIf(!existsSync(nativePath) && process.env.CI !== 'true')('native backend', () => {
  it('was built, and offers a code path on this CPU', () => {
    expect(existsSync(nativePath)).toBe(true);
    expect(nativeIsas().length).toBeGreaterThan(0);
    expect(loadNativeBackend()!.name).toBe(`native-${nativeIsas()[0]}`);
  });
  for (const isa of nativeIsas()) {
    describe(`native-${isa}`, () => {
      const native = loadNativeBackend({ isa });
      suite(() => {
        if (native === null) throw new Error(`${nativePath.pathname} offers '${isa}' but did not load it`);
        return native;
      });
    });
  }
});

describe('defaultBackend (LOOM_BACKEND)', () => {
  const bestWasm = existsSync(relaxedWasmPath) ? 'wasm-relaxed-simd' : existsSync(wasmPath) ? 'wasm-simd' : 'js';
  const best = nativeIsas().length > 0 ? `native-${nativeIsas()[0]}` : bestWasm;

  it("'js' forces the portable kernel", () => expect(defaultBackend('js')).toBe(jsBackend));

  it("'auto' and unset pick native, else wasm-relaxed-simd, else wasm-simd, else js, by what was built", () => {
    expect(defaultBackend('auto').name).toBe(best);
    expect(defaultBackend(undefined).name).toBe(best);
  });

  it.skipIf(!existsSync(wasmPath))("'wasm' forces the best wasm backend", () => expect(defaultBackend('wasm').name).toBe(bestWasm));

  it.skipIf(nativeIsas().length === 0)("'native' forces the addon's best path, 'native-<isa>' a given one", () => {
    expect(defaultBackend('native').name).toBe(best);
    for (const isa of nativeIsas()) expect(defaultBackend(`native-${isa}`).name).toBe(`native-${isa}`);
    expect(() => defaultBackend('native-vax')).toThrow("LOOM_BACKEND: 'native-vax' expects the native addon to load, but this CPU does not run the 'vax' path");
  });

  it.skipIf(nativeIsas().length === 0)('auto sends products under TINY_NATIVE multiply-adds to js, and batches to native whole', () => {
    const auto = defaultBackend('auto') as KernelBackend & { large: KernelBackend };
    expect(auto.large.name).toBe(best);
    expect(auto.matmulBatched).toBeTypeOf('function');
    expect(TINY_NATIVE).toBeGreaterThan(0);
  });

  it.skipIf(!existsSync(wasmPath))("'wasm-simd' forces plain SIMD", () => expect(defaultBackend('wasm-simd').name).toBe('wasm-simd'));

  it('routeTiny sends products under the threshold to the small backend, the rest to the large', () => {
    const calls: string[] = [];
    const spy = (name: string): KernelBackend => ({ name, matmul: () => void calls.push(name) });
    const routed = routeTiny(spy('large'), spy('small'), 64);
    expect(routed.name).toBe('large');
    const x = new Float32Array(64);
    routed.matmul(x, x, x, 4, 4, 3, false, false, false); // 48 multiply-adds
    routed.matmul(x, x, x, 4, 4, 4, false, false, false); // 64
    expect(calls).toEqual(['small', 'large']);
  });

  it('rejects anything else, naming the value', () => {
    expect(() => defaultBackend('gpu')).toThrow("LOOM_BACKEND: expected 'js', 'wasm', 'wasm-simd', 'native', 'native-<isa>' or 'auto', got 'gpu'");
  });
});
