/**
 * The fused multiply-add a·b + c, rounded once to float32: the JavaScript `fma` of the reference
 * loops and both of the kernels' lowerings (relaxed SIMD's relaxed_madd where it is fused, the
 * float64 emulation elsewhere) against an exact BigInt computation, on inputs where rounding the
 * float64 sum again to float32 (`Math.fround(a * b + c)`) gives a different float32.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fma } from '../core/common.js';
import { compileKernel, fmaLowering, setFmaLowering, type FmaLowering } from './kernel.js';
import { optimizerMemory } from './memory.js';

afterEach(() => setFmaLowering(undefined));

const f = Math.fround;
const FLT_MAX = 3.4028234663852886e38;

/** A float32 as an integer times 2^-scale, exactly (scale ≥ 149). */
function scaled(x: number, scale: number): bigint {
  const u = new Uint32Array(Float32Array.of(x).buffer)[0]!;
  const e = (u >>> 23) & 255, m = u & 0x7fffff;
  const v = e === 0 ? BigInt(m) << BigInt(scale - 149) : BigInt(m | 0x800000) << BigInt(e - 150 + scale);
  return u >>> 31 ? -v : v;
}

/** a·b + c rounded once to float32, to nearest even, by exact integer arithmetic: the oracle. */
function exactFma(a: number, b: number, c: number): number {
  const n = scaled(a, 149) * scaled(b, 149) + scaled(c, 298); // the exact sum, in units of 2^-298
  if (n === 0n) return a * b + c; // an exact zero: its sign is the float64 sum's
  const m = n < 0n ? -n : n;
  const exponent = m.toString(2).length - 1 - 298; // ⌊log2 |sum|⌋
  const quantum = Math.max(exponent - 23, -149); // float32 spacing there: 2^quantum
  const shift = BigInt(quantum + 298);
  let q = m >> shift;
  const rest = m - (q << shift), half = 1n << (shift - 1n);
  if (rest > half || (rest === half && (q & 1n) === 1n)) q += 1n;
  const r = f(Number(q) * 2 ** quantum); // q ≤ 2^24: exact, or ±Infinity past FLT_MAX
  return n < 0n ? -r : r;
}

/**
 * Triples built so that the float64 sum a·b + c often lands exactly halfway between two float32
 * values while the exact sum does not: a·b is c's half-ulp times ma·mb / 2^47, with ma·mb a 48-bit
 * product just above or below 2^47, so the sum's last 1 bits fall below float64's 53. Over
 * magnitudes from float32's subnormals to its overflow threshold, both signs, and c's last bit 0
 * and 1 (so ties to even goes both ways).
 */
function adversarial(): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let i = 2000; i < 2100; i++) {
    const ma = 2 ** 23 + i;
    for (const d of [-2, -1, 0, 1, 2]) {
      const mb = Math.round(2 ** 47 / ma) + d; // 2^23 ≤ mb < 2^24
      for (const [cm, ce] of [[1, 0], [1 + 2 ** -23, 0], [1.5, 40], [1 + 3 * 2 ** -23, -100], [2 - 2 ** -23, 127], [1, -125]] as const) {
        const c = f(cm * 2 ** ce);
        // a·b = ma·mb · 2^(ce − 24 − 47): half a float32 ulp of c, times ma·mb / 2^47.
        const a = f(ma * 2 ** -23), b = f(mb * 2 ** (ce - 24 - 24));
        for (const [x, y, z] of [[a, b, c], [-a, b, -c], [a, -b, c], [-a, -b, -c]] as const) out.push([x, y, z]);
      }
    }
  }
  // (2^23 + 2048)(2^24 − 4095) = 2^47 + 2048 and (2^23 + 2049)(2^24 − 4097) = 2^47 − 6145.
  const pairs = [[2 ** 23 + 2048, 2 ** 24 - 4095], [2 ** 23 + 2049, 2 ** 24 - 4097]] as const;
  for (const [ma, mb] of pairs) {
    // At the overflow threshold 2^128 − 2^103 (halfway between FLT_MAX and 2^128): a·b ≈ 2^103.
    const a = f(ma * 2 ** 40), b = f(mb * 2 ** 16);
    out.push([a, b, FLT_MAX], [-a, b, -FLT_MAX]);
    // In float32's subnormal range, where halfway points are the odd multiples of 2^-150: a·b ≈ 2^-150,
    // c just below 2^-126 (so that the sum needs more than 53 bits).
    for (let i = 0; i < 64; i++) out.push([f(ma * 2 ** -93), f(mb * 2 ** -104), f((2 ** 23 - 1 - i) * 2 ** -149)]);
  }
  return out;
}

/** Deterministic float32 triples of every magnitude, and products near c's rounding boundaries. */
function random(n: number): [number, number, number][] {
  let s = 12345;
  const rand = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const bits = new Uint32Array(1), float = new Float32Array(bits.buffer);
  const any = () => {
    bits[0] = (rand() * 2 ** 32) >>> 0;
    return Number.isFinite(float[0]) ? float[0]! : 1;
  };
  const out: [number, number, number][] = [];
  for (let i = 0; i < n; i++) {
    out.push([any(), any(), any()]);
    const c = f((rand() * 2 - 1) * 2 ** Math.floor(rand() * 60 - 30)), a = f(1 + rand());
    out.push([a, f((Math.abs(c) * 2 ** -24 * (1 + rand() * 2 ** -20)) / a), c]);
  }
  return out;
}

const cases = adversarial();
const show = ([a, b, c]: number[]) => `fma(${a}, ${b}, ${c})`;

describe('fma: a·b + c rounded once to float32', () => {
  it('the adversarial inputs are ones where rounding twice, Math.fround(a * b + c), is wrong', () => {
    const twice = cases.filter(([a, b, c]) => !Object.is(f(a * b + c), exactFma(a, b, c)));
    expect(twice.length).toBeGreaterThan(500); // of about 12,000 (half of the ties happen to break the right way)
    // Both ways: the double rounding goes up where once goes down, and down where once goes up.
    expect(twice.some(([a, b, c]) => f(a * b + c) > exactFma(a, b, c))).toBe(true);
    expect(twice.some(([a, b, c]) => f(a * b + c) < exactFma(a, b, c))).toBe(true);
    expect(twice.some(([a, b, c]) => Math.abs(f(a * b + c)) === Infinity && Math.abs(exactFma(a, b, c)) === FLT_MAX)).toBe(true);
    expect(twice.some(([a, b, c]) => Math.abs(exactFma(a, b, c)) < 2 ** -126)).toBe(true);
  });

  it('JavaScript: equal to the exact result on adversarial and random inputs', () => {
    for (const t of [...cases, ...random(20000)]) {
      if (!Object.is(fma(...t), exactFma(...t))) throw new Error(`${show(t)} = ${fma(...t)}, exact ${exactFma(...t)}`);
    }
  });

  it('the probe finds a fused relaxed_madd on x86-64 with FMA3 and on ARM64', (ctx) => {
    const cpu = process.platform === 'linux' ? readFileSync('/proc/cpuinfo', 'utf8') : '';
    const fmaHardware = process.arch === 'arm64' || (process.arch === 'x64' && /^flags\s*:.*\bfma\b/m.test(cpu));
    if (!fmaHardware) {
      ctx.skip(process.arch === 'x64' && process.platform !== 'linux'
        ? 'no /proc/cpuinfo to tell whether this x86-64 CPU has FMA3'
        : `this CPU (${process.arch}) has no FMA instruction, so there is no fused relaxed_madd to find`);
    }
    expect(fmaLowering()).toBe('fused');
  });

  const lowerings: FmaLowering[] = fmaLowering() === 'fused' ? ['fused', 'emulated'] : ['emulated'];
  for (const lowering of lowerings) {
    it(`WebAssembly, ${lowering}: the same bits as the JavaScript fma, in vector lanes and the scalar tail`, () => {
      setFmaLowering(lowering);
      const kernel = compileKernel(['a', 'b', 'c', 'out'], [], (k) => k.store('out', k.fma(k.load('a'), k.load('b'), k.load('c'))));
      expect(kernel).not.toBeNull();
      const all = [...cases, ...random(5000)];
      const n = all.length; // not a multiple of 4 below: the last elements take the scalar loop
      for (const inPlace of [true, false]) {
        const alloc = inPlace ? optimizerMemory.alloc : (k: number) => new Float32Array(k);
        const [a, b, c, out] = [alloc(n), alloc(n), alloc(n), alloc(n)];
        all.forEach(([x, y, z], i) => ((a[i] = x), (b[i] = y), (c[i] = z)));
        kernel!.run([a, b, c, out], [], 0, n);
        // Again on one element at a time: all through the scalar loop.
        const tail = alloc(n);
        for (let i = 0; i < n; i++) kernel!.run([a, b, c, tail], [], i, i + 1);
        for (let i = 0; i < n; i++) {
          const want = fma(a[i]!, b[i]!, c[i]!);
          if (!Object.is(out[i], want) || !Object.is(tail[i], want)) throw new Error(`${show(all[i]!)} = ${out[i]} / ${tail[i]}, expected ${want}`);
        }
        if (inPlace) for (const x of [a, b, c, out, tail]) optimizerMemory.free(x);
      }
    });
  }
});
