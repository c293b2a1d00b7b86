/**
 * A tiny compiler from element-wise float32 expressions to WebAssembly SIMD, so that each optimizer
 * is written once as a list of per-element statements and runs four lanes at a time.
 *
 * Why: an optimizer step is a handful of float32 operations per element. V8 does not vectorise
 * JavaScript loops, and a scalar JS Adam step (about 10 ns per element here) is several times slower
 * than PyTorch's AVX2 kernels; the same statements in 128-bit WebAssembly SIMD take about 2.5 ns.
 * That needs no native add-on, toolchain or build step: this file writes the module's bytes itself
 * (about 30 opcodes).
 *
 * The contract that makes it safe:
 *  - every operation is an IEEE-754 float32 add, mul, div, sqrt, neg or max, rounded to
 *    nearest — exactly what `Math.fround` of the same JavaScript operation gives — or a fused
 *    multiply-add a·b + c rounded once to float32, exactly what common.ts's `fma` gives. A lane of
 *    the vector loop, the scalar tail loop and the plain JavaScript reference loop therefore
 *    produce the same bits for the same element, wherever the element falls in a slice.
 *  - the fused multiply-add is relaxed SIMD's `f32x4.relaxed_madd` when it is fused on this machine
 *    (x86-64 with FMA3, ARM64), and otherwise an exact emulation in float64 (see `fmaLowering`).
 *    Relaxed SIMD allows either a fused or an unfused result, so before using it a probe checks
 *    that it is fused here, on inputs where the two differ.
 *  - WebAssembly can only read its own memory. Every kernel imports the one shared memory of
 *    memory.ts, and `run(p₀, …, pₐ₋₁, n, s₀, …)` takes each array's byte address, the element count
 *    and the scalars as arguments, so it runs on any region of that memory. Arrays allocated there
 *    (`optimizerMemory.alloc`) are stepped in place, in one call. Any other array is copied through
 *    a staging area in chunks of CHUNK elements (at most MAX_ARRAYS × 16 KiB, staying in L2, so
 *    main memory is still read and written once per element) and the arrays it wrote are copied
 *    back. Both paths run the same code on the same values: the same bits.
 */
import { argError } from '../errors.js';
import { CHUNK, MAX_ARRAYS, MAX_PAGES, inKernelMemory, kernelHeap } from './memory.js';

export { CHUNK };
const MAX_SCALARS = 16;
/**
 * Groups of four per iteration of the main vector loop. With a fused multiply-add the loop is short
 * enough that its overhead (bounds check, increment, branch) shows: two groups make SGD and Momentum
 * at 1M parameters 5–15% faster; four add nothing more.
 */
const UNROLL = 2;

export type BinaryOp = 'add' | 'mul' | 'div' | 'max';
export type UnaryOp = 'sqrt' | 'neg';

/** A per-element float32 expression. */
export type Expr =
  | { readonly k: 'scalar'; readonly index: number }
  | { readonly k: 'local'; readonly index: number }
  | { readonly k: 'unary'; readonly op: UnaryOp; readonly a: Expr }
  | { readonly k: 'binary'; readonly op: BinaryOp; readonly a: Expr; readonly b: Expr }
  | { readonly k: 'fma'; readonly a: Leaf; readonly b: Leaf; readonly c: Leaf };

/** A value that can be read more than once without recomputing it: a scalar or a named value. */
type Leaf = Extract<Expr, { k: 'scalar' | 'local' }>;

type Stmt =
  | { readonly k: 'load'; readonly local: number; readonly array: number }
  /** Σᵢ wᵢ·arrays[i] of the element in float64, in order from 0, rounded once (as weightedSum computes it). */
  | { readonly k: 'loadSum'; readonly local: number; readonly arrays: readonly number[] }
  | { readonly k: 'let'; readonly local: number; readonly value: Expr }
  | { readonly k: 'store'; readonly array: number; readonly value: Expr };

export const add = (a: Expr, b: Expr): Expr => ({ k: 'binary', op: 'add', a, b });
export const mul = (a: Expr, b: Expr): Expr => ({ k: 'binary', op: 'mul', a, b });
export const div = (a: Expr, b: Expr): Expr => ({ k: 'binary', op: 'div', a, b });
export const max = (a: Expr, b: Expr): Expr => ({ k: 'binary', op: 'max', a, b });
export const sqrt = (a: Expr): Expr => ({ k: 'unary', op: 'sqrt', a });
export const neg = (a: Expr): Expr => ({ k: 'unary', op: 'neg', a });

/**
 * Collects a kernel's statements, in program order, for one element.
 * `load` reads the element of an array (do it before storing to that array), `let` names a value,
 * `store` writes the element.
 */
export class KernelBuilder<A extends string, S extends string> {
  /** @internal */ readonly stmts: Stmt[] = [];
  /** @internal */ locals = 0;

  private readonly sum: { array: A; inputs: number } | undefined;

  /**
   * With `sum` = { array, inputs: k ≥ 1 }, loading `array` reads the weighted sum of k arrays instead:
   * `array` itself and k − 1 more that follow the named ones, weighted by k float64 arguments that
   * follow the scalars (see `compileKernel`). With k = 0 it is a plain load.
   */
  constructor(
    readonly arrays: readonly A[],
    readonly scalars: readonly S[],
    sum?: { array: A; inputs: number },
  ) {
    this.sum = sum !== undefined && sum.inputs >= 1 ? sum : undefined;
    if (scalars.length > MAX_SCALARS) throw new Error(`kernel: at most ${MAX_SCALARS} scalars`);
    if (arrays.length + (this.sum ? this.sum.inputs - 1 : 0) > MAX_ARRAYS) throw new Error(`kernel: at most ${MAX_ARRAYS} arrays`);
  }

  load(array: A): Expr {
    const local = this.locals++;
    const index = this.arrayIndex(array);
    if (this.sum !== undefined && array === this.sum.array) {
      const extra = Array.from({ length: this.sum.inputs - 1 }, (_, i) => this.arrays.length + i);
      this.stmts.push({ k: 'loadSum', local, arrays: [index, ...extra] });
    } else {
      this.stmts.push({ k: 'load', local, array: index });
    }
    return { k: 'local', index: local };
  }

  scalar(name: S): Expr {
    const index = this.scalars.indexOf(name);
    if (index < 0) throw new Error(`kernel: unknown scalar '${name}'`);
    return { k: 'scalar', index };
  }

  let(value: Expr): Expr {
    const local = this.locals++;
    this.stmts.push({ k: 'let', local, value });
    return { k: 'local', index: local };
  }

  /**
   * a·b + c rounded once to float32, as PyTorch's AVX2 kernels compute `add(x, alpha)` and
   * `addcmul` (with FMA instructions), and as common.ts's `fma` does in JavaScript.
   */
  fma(a: Expr, b: Expr, c: Expr): Expr {
    return { k: 'fma', a: this.leaf(a), b: this.leaf(b), c: this.leaf(c) };
  }

  private leaf(e: Expr): Leaf {
    return e.k === 'scalar' || e.k === 'local' ? e : (this.let(e) as Leaf);
  }

  store(array: A, value: Expr): void {
    this.stmts.push({ k: 'store', array: this.arrayIndex(array), value });
  }

  private arrayIndex(name: A): number {
    const index = this.arrays.indexOf(name);
    if (index < 0) throw new Error(`kernel: unknown array '${name}'`);
    return index;
  }
}

// ---- WebAssembly encoding ------------------------------------------------------------------------

const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;
const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
};
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return out.concat(b);
    out.push(b | 0x80);
  }
};
const name = (s: string): number[] => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const simd = (op: number): number[] => [0xfd, ...uleb(op)];

/** Opcodes: [scalar f32, vector f32x4]. */
const BINARY: Record<BinaryOp, [number[], number[]]> = {
  add: [[0x92], simd(0xe4)],
  mul: [[0x94], simd(0xe6)],
  div: [[0x95], simd(0xe7)],
  max: [[0x97], simd(0xe9)],
};
const UNARY: Record<UnaryOp, [number[], number[]]> = {
  sqrt: [[0x91], simd(0xe3)],
  neg: [[0x8c], simd(0xe1)],
};
// float64 lanes, for fma: promote the low two f32 lanes, demote back into the low two lanes.
const F64X2_PROMOTE_LOW = simd(0x5f), F32X4_DEMOTE_ZERO = simd(0x5e), F64X2_ADD = simd(0xf0), F64X2_MUL = simd(0xf2);
const shuffle = (lanes: number[]) => [...simd(0x0d), ...lanes];
const HIGH_TO_LOW = shuffle([8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]);
const JOIN_LOWS = shuffle([0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]);
const F64X2_SPLAT = simd(0x14), F64_PROMOTE = [0xbb], F64X2_SUB = simd(0xf1), F64X2_ABS = simd(0xec), F64X2_GT = simd(0x4a), F64X2_LT = simd(0x49);
const V128_AND = simd(0x4e), V128_OR = simd(0x50), V128_XOR = simd(0x51), I64X2_SPLAT = simd(0x12), I64X2_SHR_S = simd(0xcc), I64X2_ADD = simd(0xce);
const F32X4_EXTRACT_LANE0 = [...simd(0x1f), 0], I64_CONST = 0x42;
/** Relaxed SIMD's a·b + c, fused or not as the hardware does it (final encoding; V8 11.3 agrees). */
const F32X4_RELAXED_MADD = simd(0x105);
const LOCAL_GET = 0x20, LOCAL_SET = 0x21, LOCAL_TEE = 0x22, I32_CONST = 0x41, BLOCK = 0x02, LOOP = 0x03, BR = 0x0c, BR_IF = 0x0d, END = 0x0b;
const I32_ADD = 0x6a, I32_AND = 0x71, I32_SHL = 0x74, I32_GE_U = 0x4f, VOID = 0x40;
// opcode, log2(align); the memory offset follows. Alignment is a hint: slices may start anywhere.
const F32_LOAD = [0x2a, 2], F32_STORE = [0x38, 2], V128_LOAD = [...simd(0x00), 4], V128_STORE = [...simd(0x0b), 4];
const F32X4_SPLAT = simd(0x13);

/**
 * The bytes of a module that imports `env.memory` (shared or not, as `shared` says) and exports
 * `run(p₀, …, pₐ₋₁: i32, n: i32, s₀, …: f32, w₀, …: f64)`: the statements over elements [0, n) of
 * the arrays at byte addresses p₀, …, with scalars s₀, … (and the weights of a summed load, if any).
 */
function encode(stmts: readonly Stmt[], nArrays: number, nScalars: number, nWeights: number, nLocals: number, shared: boolean, fused: boolean): Uint8Array {
  // Locals: the parameters (0 .. nArrays-1 = array addresses, N = n, then the f32 scalars); then
  // OFF = byte offset of the current element, END_AT = loop end; then, all v128: the scalars splat
  // to f32x4 and to f64x2, the vector loop's values, and their low and high halves promoted to
  // f64x2 (computed on their first use by an emulated fma, reused after), the emulated fma's
  // temporaries P, S, T, E, the constants ONE (i64x2 of 1) and ZERO; then the scalar loop's f32 values.
  // With a weighted sum (nWeights > 0): its f64 weights are parameters after the scalars, and after
  // the scalar loop's values come the weights splat to f64x2, the sum's two f64x2 halves and the
  // scalar loop's f64 sum.
  const N = nArrays, SCALAR = N + 1, WEIGHT = SCALAR + nScalars, OFF = WEIGHT + nWeights, END_AT = OFF + 1, SPLAT = END_AT + 1, SPLAT64 = SPLAT + nScalars, VLOC = SPLAT64 + nScalars;
  const VLO = VLOC + nLocals, VHI = VLO + nLocals, P = uleb(VHI + nLocals), S = uleb(VHI + nLocals + 1), T = uleb(VHI + nLocals + 2), E = uleb(VHI + nLocals + 3);
  const ONE = uleb(VHI + nLocals + 4), ZERO = uleb(VHI + nLocals + 5), SLOC = VHI + nLocals + 6;
  const WSPLAT = SLOC + nLocals, SUM_LO = uleb(WSPLAT + nWeights), SUM_HI = uleb(WSPLAT + nWeights + 1), SUM_ACC = uleb(WSPLAT + nWeights + 2);
  /** The address of the current element of array a. */
  const address = (a: number) => [LOCAL_GET, ...uleb(a), LOCAL_GET, ...uleb(OFF), I32_ADD];
  let promoted = new Set<string>();

  /** A leaf's lanes 0–1 (or 2–3) as f64x2. */
  const half = (x: Leaf, high: boolean): number[] => {
    if (x.k === 'scalar') return [LOCAL_GET, ...uleb(SPLAT64 + x.index)];
    const cache = uleb((high ? VHI : VLO) + x.index), key = `${high}${x.index}`;
    if (promoted.has(key)) return [LOCAL_GET, ...cache];
    promoted.add(key);
    const get = [LOCAL_GET, ...uleb(VLOC + x.index)];
    return [...get, ...(high ? [...get, ...HIGH_TO_LOW] : []), ...F64X2_PROMOTE_LOW, LOCAL_TEE, ...cache];
  };

  /**
   * a·b + c for two lanes, from operands pushed as f64x2 by `a`, `b` and `c`, rounded once to
   * float32 in lanes 0–1 of the result. The product is exact in float64 (24 + 24 bits) but the sum
   * may not be, and rounding to float64 then to float32 is not always rounding once: when the sum
   * rounds to a value exactly halfway between two float32s, the second rounding breaks a tie that
   * the exact sum did not have. So the sum is rounded to odd instead (Boldo & Melquiond): s = p + c
   * with its error e from TwoSum; when e ≠ 0, s moves one float64 step towards zero if the exact sum
   * lies that way (round towards zero), and its last bit is set. An odd float64 is never a float32
   * nor halfway between two, and lies on the same side of each as the exact sum, so demoting it to
   * float32 rounds as the exact sum would.
   */
  const emulatedFma = (a: number[], b: number[], c: number[]): number[] => [
    ...a, ...b, ...F64X2_MUL, LOCAL_TEE, ...P, ...c, ...F64X2_ADD, LOCAL_TEE, ...S, // s = p + c
    LOCAL_GET, ...P, ...F64X2_SUB, LOCAL_SET, ...T, // t = s − p
    LOCAL_GET, ...P, LOCAL_GET, ...S, LOCAL_GET, ...T, ...F64X2_SUB, ...F64X2_SUB, // p − (s − t)
    ...c, LOCAL_GET, ...T, ...F64X2_SUB, ...F64X2_ADD, LOCAL_SET, ...E, // e = (p − (s − t)) + (c − t)
    LOCAL_GET, ...E, ...F64X2_ABS, LOCAL_GET, ...ZERO, ...F64X2_GT, LOCAL_SET, ...T, // t = inexact: e ≠ 0 (and not NaN)
    LOCAL_GET, ...S, // round to odd = round towards zero, then set the last bit if inexact:
    LOCAL_GET, ...S, LOCAL_GET, ...E, ...F64X2_MUL, LOCAL_GET, ...ZERO, ...F64X2_LT, ...I64X2_ADD, // −1 when e is towards zero (s·e < 0; no underflow: both are multiples of 2⁻²⁹⁸)
    LOCAL_GET, ...T, LOCAL_GET, ...ONE, ...V128_AND, ...V128_OR,
    ...F32X4_DEMOTE_ZERO,
  ];
  /** A scalar f32 leaf splat to f64x2, for the scalar loop's emulated fma. */
  const splat64 = (x: Leaf) => [...expr(x, 0), ...F64_PROMOTE, ...F64X2_SPLAT];

  const expr = (e: Expr, v: 0 | 1): number[] => {
    switch (e.k) {
      case 'scalar':
        return [LOCAL_GET, ...uleb((v ? SPLAT : SCALAR) + e.index)];
      case 'local':
        return [LOCAL_GET, ...uleb((v ? VLOC : SLOC) + e.index)];
      case 'unary':
        return [...expr(e.a, v), ...UNARY[e.op][v]];
      case 'binary':
        return [...expr(e.a, v), ...expr(e.b, v), ...BINARY[e.op][v]];
      case 'fma': {
        if (fused && v) return [...expr(e.a, 1), ...expr(e.b, 1), ...expr(e.c, 1), ...F32X4_RELAXED_MADD];
        // The scalar loop computes lane 0 of the vector instruction, so both loops round alike.
        if (fused) return [...expr(e.a, 0), ...F32X4_SPLAT, ...expr(e.b, 0), ...F32X4_SPLAT, ...expr(e.c, 0), ...F32X4_SPLAT, ...F32X4_RELAXED_MADD, ...F32X4_EXTRACT_LANE0];
        if (!v) return [...emulatedFma(splat64(e.a), splat64(e.b), splat64(e.c)), ...F32X4_EXTRACT_LANE0];
        // Lanes 0–1 and lanes 2–3 in float64, then the two halves joined.
        return [
          ...emulatedFma(half(e.a, false), half(e.b, false), half(e.c, false)),
          ...emulatedFma(half(e.a, true), half(e.b, true), half(e.c, true)),
          ...JOIN_LOWS,
        ];
      }
    }
  };
  /**
   * Σᵢ wᵢ·xᵢ of the element(s) at OFF + at into local `to`: float64 products and sums from 0 in order,
   * rounded once to float32 — the operations of encodeWeightedSum, so the bits of weightedSum.
   */
  const weightedSumInto = (arrays: readonly number[], to: number[], v: 0 | 1, at: number): number[] => {
    if (!v) {
      return [
        F64_CONST, 0, 0, 0, 0, 0, 0, 0, 0, LOCAL_SET, ...SUM_ACC,
        ...arrays.flatMap((a, i) => [LOCAL_GET, ...SUM_ACC, ...address(a), ...F32_LOAD, ...uleb(at), ...F64_PROMOTE, LOCAL_GET, ...uleb(WEIGHT + i), F64_MUL, F64_ADD, LOCAL_SET, ...SUM_ACC]),
        LOCAL_GET, ...SUM_ACC, F32_DEMOTE, LOCAL_SET, ...to,
      ];
    }
    const zero = [...simd(0x0c), ...Array<number>(16).fill(0)]; // v128.const 0
    const w = (i: number) => [LOCAL_GET, ...uleb(WSPLAT + i)];
    return [
      ...zero, LOCAL_SET, ...SUM_LO, ...zero, LOCAL_SET, ...SUM_HI,
      ...arrays.flatMap((a, i) => [
        ...address(a), ...V128_LOAD, ...uleb(at), LOCAL_SET, ...to, // the element's lanes, held in `to` for now
        LOCAL_GET, ...SUM_LO, LOCAL_GET, ...to, ...F64X2_PROMOTE_LOW, ...w(i), ...F64X2_MUL, ...F64X2_ADD, LOCAL_SET, ...SUM_LO,
        LOCAL_GET, ...SUM_HI, LOCAL_GET, ...to, LOCAL_GET, ...to, ...HIGH_TO_LOW, ...F64X2_PROMOTE_LOW, ...w(i), ...F64X2_MUL, ...F64X2_ADD, LOCAL_SET, ...SUM_HI,
      ]),
      LOCAL_GET, ...SUM_LO, ...F32X4_DEMOTE_ZERO, LOCAL_GET, ...SUM_HI, ...F32X4_DEMOTE_ZERO, ...JOIN_LOWS, LOCAL_SET, ...to,
    ];
  };
  /** The statements for the element(s) at byte offset OFF + at. */
  const body = (v: 0 | 1, at = 0): number[] => {
    promoted = new Set();
    return stmts.flatMap((s) => {
      const loc = (i: number) => uleb((v ? VLOC : SLOC) + i);
      switch (s.k) {
        case 'load':
          return [...address(s.array), ...(v ? V128_LOAD : F32_LOAD), ...uleb(at), LOCAL_SET, ...loc(s.local)];
        case 'loadSum':
          return weightedSumInto(s.arrays, loc(s.local), v, at);
        case 'let':
          return [...expr(s.value, v), LOCAL_SET, ...loc(s.local)];
        case 'store':
          return [...address(s.array), ...expr(s.value, v), ...(v ? V128_STORE : F32_STORE), ...uleb(at)];
      }
    });
  };
  // while (off < end) { body at off, off + 16, …; off += step }
  const loop = (v: 0 | 1, unroll = 1): number[] => [
    BLOCK, VOID, LOOP, VOID,
    LOCAL_GET, ...uleb(OFF), LOCAL_GET, ...uleb(END_AT), I32_GE_U, BR_IF, 1,
    ...Array.from({ length: unroll }, (_, u) => body(v, u * 16)).flat(),
    LOCAL_GET, ...uleb(OFF), I32_CONST, ...sleb((v ? 16 : 4) * unroll), I32_ADD, LOCAL_SET, ...uleb(OFF),
    BR, 0, END, END,
  ];
  const setEnd = (mask: number) => [LOCAL_GET, ...uleb(N), I32_CONST, ...sleb(mask), I32_AND, I32_CONST, 2, I32_SHL, LOCAL_SET, ...uleb(END_AT)];
  const code = [
    ...(nWeights > 0 ? uleb(5) : uleb(3)), 2, I32, ...uleb(2 * nScalars + 3 * nLocals + 6), V128, ...uleb(nLocals), F32,
    ...(nWeights > 0 ? [...uleb(nWeights + 2), V128, 1, F64] : []),
    I64_CONST, 1, ...I64X2_SPLAT, LOCAL_SET, ...ONE,
    ...Array.from({ length: nWeights }, (_, i) => [LOCAL_GET, ...uleb(WEIGHT + i), ...F64X2_SPLAT, LOCAL_SET, ...uleb(WSPLAT + i)]).flat(),
    ...Array.from({ length: nScalars }, (_, j) => [
      LOCAL_GET, ...uleb(SCALAR + j), ...F32X4_SPLAT, LOCAL_SET, ...uleb(SPLAT + j),
      LOCAL_GET, ...uleb(SCALAR + j), ...F64_PROMOTE, ...F64X2_SPLAT, LOCAL_SET, ...uleb(SPLAT64 + j),
    ]).flat(),
    // The unrolled vector loop covers whole groups of 4·UNROLL (end = (n & −4·UNROLL) · 4 bytes), the
    // vector loop the whole groups of four left, the scalar loop the last 0–3 elements.
    ...setEnd(-4 * UNROLL), ...loop(1, UNROLL),
    ...setEnd(-4), ...loop(1),
    ...setEnd(-1), ...loop(0),
    END,
  ];
  const params = [...Array<number>(nArrays + 1).fill(I32), ...Array<number>(nScalars).fill(F32), ...Array<number>(nWeights).fill(F64)];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, ...uleb(params.length), ...params, 0]), // type 0: (i32 × (arrays + 1), f32 × scalars, f64 × weights) -> ()
    // import env.memory: limits min 0 (max 4 GiB, shared) or no max
    ...section(2, [1, ...name('env'), ...name('memory'), 0x02, ...(shared ? [0x03, 0, ...uleb(MAX_PAGES)] : [0x00, 0])]),
    ...section(3, [1, 0]), // function 0 has type 0
    ...section(7, [1, ...name('run'), 0x00, 0]),
    ...section(10, [1, ...uleb(code.length), ...code]),
  ]);
}

/** The part of the WebAssembly API used here (typed locally: the build's lib has no DOM types). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  validate(bytes: Uint8Array): boolean;
}
const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

/**
 * How kernels compute a fused multiply-add: 'fused' with relaxed SIMD's f32x4.relaxed_madd, or
 * 'emulated' in float64 (the same bits; about 40 instructions per four lanes instead of one).
 */
export type FmaLowering = 'fused' | 'emulated';
let probed: FmaLowering | undefined;
let forced: FmaLowering | undefined;

/**
 * The probe's module: `madd(a, b, c: f32) -> f32`, lane 0 of f32x4.relaxed_madd of the three
 * arguments splat.
 */
const PROBE = (() => {
  const code = [0, LOCAL_GET, 0, ...F32X4_SPLAT, LOCAL_GET, 1, ...F32X4_SPLAT, LOCAL_GET, 2, ...F32X4_SPLAT, ...F32X4_RELAXED_MADD, ...F32X4_EXTRACT_LANE0, END];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 3, F32, F32, F32, 1, F32]),
    ...section(3, [1, 0]),
    ...section(7, [1, ...name('madd'), 0x00, 0]),
    ...section(10, [1, ...uleb(code.length), ...code]),
  ]);
})();

/**
 * 'fused' when this runtime has relaxed SIMD and its f32x4.relaxed_madd rounds once, else
 * 'emulated'. Decided once, by running the instruction on a = b = 1 + 2⁻¹², c = −(1 + 2⁻¹¹):
 * a·b + c = 2⁻²⁴ exactly, but a·b rounded to float32 is 1 + 2⁻¹¹, so an unfused multiply and add
 * give 0. (V8 lowers relaxed_madd to vfmadd on x86-64 with FMA3 — in Liftoff and TurboFan alike,
 * checked with --liftoff-only and --no-liftoff — to a multiply and an add without FMA3, and to fmla
 * on ARM64.) Node 20 has relaxed SIMD behind
 * --experimental-wasm-relaxed-simd: when the probe does not validate, this sets that flag — as
 * @loom/tensor-core's relaxed backend does; it is process-wide and only makes more WebAssembly
 * instructions valid — and validates again.
 */
export function fmaLowering(): FmaLowering {
  return forced ?? (probed ??= probe());
}

/**
 * Forces a lowering for the kernels used from now on (`undefined`: back to the probe's choice).
 * Both give the same bits, so this exists for tests and benchmarks; forcing 'fused' where the
 * probe found no fused relaxed_madd would break that, and throws.
 *
 * @example
 * setFmaLowering('emulated'); // time the float64 emulation that machines without FMA run
 */
export function setFmaLowering(lowering: FmaLowering | undefined): void {
  if (lowering !== undefined && lowering !== 'fused' && lowering !== 'emulated') {
    throw argError('setFmaLowering', `unknown lowering '${String(lowering)}' (expected 'fused', 'emulated' or undefined)`);
  }
  if (lowering === 'fused' && (probed ??= probe()) !== 'fused') {
    throw argError('setFmaLowering', "this runtime has no fused relaxed_madd (fmaLowering() is 'emulated')");
  }
  forced = lowering;
}

function probe(): FmaLowering {
  if (!wasm) return 'emulated';
  try {
    if (!wasm.validate(PROBE)) {
      type V8 = { setFlagsFromString(flags: string): void };
      const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
      (proc?.getBuiltinModule?.('node:v8') as V8 | undefined)?.setFlagsFromString('--experimental-wasm-relaxed-simd');
      if (!wasm.validate(PROBE)) return 'emulated';
    }
    const madd = new wasm.Instance(new wasm.Module(PROBE), {}).exports.madd as (a: number, b: number, c: number) => number;
    const a = 1 + 2 ** -12, c = -(1 + 2 ** -11);
    return madd(a, a, c) === 2 ** -24 && madd(-a, a, -c) === -(2 ** -24) ? 'fused' : 'emulated';
  } catch {
    return 'emulated';
  }
}

/** A compiled kernel: `run(arrays, scalars, start, end)` applies it to elements [start, end). */
export interface Kernel {
  run(arrays: readonly (Float32Array | undefined)[], scalars: ArrayLike<number>, start: number, end: number): void;
}

/**
 * Compiles the statements that `build` records into a WebAssembly SIMD kernel, or returns null when
 * this runtime has no WebAssembly SIMD.
 *
 * With `sum` = { array, inputs: k ≥ 1 }, the kernel reads `array` as the weighted sum of k arrays — the
 * one named and k − 1 more passed after the named ones, weighted by k numbers passed after the
 * scalars — computed as weightedSum computes it, so the same bits as a weightedSum into `array`
 * followed by the kernel, in one pass that neither writes nor re-reads the sum.
 */
export function compileKernel<A extends string, S extends string>(
  arrays: readonly A[],
  scalars: readonly S[],
  build: (k: KernelBuilder<A, S>) => void,
  sum?: { array: A; inputs: number },
): Kernel | null {
  const k = new KernelBuilder(arrays, scalars, sum);
  build(k);
  const heap = kernelHeap();
  if (!wasm || !heap) return null;
  const summed = sum !== undefined && sum.inputs >= 1;
  const nArrays = arrays.length + (summed ? sum.inputs - 1 : 0), nWeights = summed ? sum.inputs : 0;
  const reads = [...new Set(k.stmts.flatMap((s) => (s.k === 'load' ? [s.array] : s.k === 'loadSum' ? s.arrays : [])))];
  const writes = [...new Set(k.stmts.flatMap((s) => (s.k === 'store' ? [s.array] : [])))];
  const bytes = encode(k.stmts, nArrays, scalars.length, nWeights, k.locals, heap.shared, fmaLowering() === 'fused');
  return instantiate(bytes, nArrays, scalars.length + nWeights, reads, writes);
}

/**
 * The module's `run` wrapped to take arrays: in place when every array it uses lives in the
 * kernels' memory, else through this thread's staging area in chunks. Null when the runtime cannot
 * instantiate it (no SIMD).
 */
function instantiate(bytes: Uint8Array, nArrays: number, nScalars: number, reads: number[], writes: number[]): Kernel | null {
  const heap = kernelHeap()!;
  let fn: (...args: number[]) => void;
  try {
    const instance = new wasm!.Instance(new wasm!.Module(bytes), { env: { memory: heap.memory } });
    fn = instance.exports.run as typeof fn;
  } catch {
    return null; // no SIMD in this runtime
  }
  const used = [...new Set([...reads, ...writes])];
  // The arguments of fn, reused: array addresses, n, scalars. Unused arrays' addresses stay 0.
  const args: number[] = new Array<number>(nArrays + 1 + nScalars).fill(0);
  const staged: boolean[] = new Array<boolean>(nArrays).fill(false);
  // This thread's staging area (the bottom of the memory, or the block its owner gave the thread).
  // Growth never detaches a shared memory's views, and a non-shared one never grows (alloc does not
  // use it), so these views stay valid.
  const staging = (a: number) => heap.stagingAt + a * CHUNK * 4;
  const views = Array.from({ length: nArrays }, (_, a) => new Float32Array(heap.memory.buffer, staging(a), CHUNK));
  return {
    run(data, values, start, end) {
      for (let j = 0; j < values.length; j++) args[nArrays + 1 + j] = values[j]!; // converted by the call: to f32 as Math.fround does, or kept as f64
      let copies = false;
      for (const a of used) copies = (staged[a] = !inKernelMemory(data[a])) || copies;
      if (!copies) {
        // Every array lives in the kernels' memory: one call, in place.
        for (const a of used) args[a] = data[a]!.byteOffset + start * 4;
        args[nArrays] = end - start;
        fn(...args);
        return;
      }
      for (const a of used) if (staged[a]) args[a] = staging(a);
      for (let i = start; i < end; i += CHUNK) {
        const n = Math.min(CHUNK, end - i);
        for (const a of used) if (!staged[a]) args[a] = data[a]!.byteOffset + i * 4;
        for (const a of reads) if (staged[a]) views[a]!.set(data[a]!.subarray(i, i + n));
        args[nArrays] = n;
        fn(...args);
        for (const a of writes) if (staged[a]) data[a]!.set(n === CHUNK ? views[a]! : views[a]!.subarray(0, n), i);
      }
    },
  };
}

// ---- weighted sums: out = Σₖ wₖ·xₖ in float64 -----------------------------------------------------

const F64 = 0x7c;
const F64_MUL = 0xa2, F64_ADD = 0xa0, F32_DEMOTE = 0xb6, F64_CONST = 0x44;

/** The most arrays a weighted sum adds in one kernel (it also writes `out`). */
export const MAX_SUM_INPUTS = MAX_ARRAYS - 1;

/**
 * The weighted sum of `k` arrays as a kernel: `run([out, x₀, …], [w₀, …], start, end)` computes
 * out[j] = ((0 + w₀·x₀[j]) + w₁·x₁[j]) + … in float64, rounded once to float32 — the same operations,
 * in the same order, as the JavaScript loop `let acc = 0; for (k…) acc += w[k] * x[k][j]`, so the
 * same bits. It is the summed load every optimizer kernel can make (see `compileKernel`), stored.
 * Null when this runtime has no WebAssembly SIMD or k is out of [1, MAX_SUM_INPUTS].
 */
export function compileWeightedSum(k: number): Kernel | null {
  if (!(Number.isInteger(k) && k >= 1 && k <= MAX_SUM_INPUTS)) return null;
  return compileKernel(['out', 'x'], [], (b) => b.store('out', b.load('x')), { array: 'x', inputs: k });
}

// ---- a scan for NaN and ±Infinity -------------------------------------------------------------------

const I32_LOAD = [0x28, 2], I32_EQ = 0x46, I32_OR = 0x72;
const I32X4_SPLAT = simd(0x11), I32X4_EQ = simd(0x37), V128_ANY_TRUE = simd(0x53);
/** The float32 exponent bits: all set exactly for NaN and ±Infinity. */
const EXPONENT = 0x7f800000;

/**
 * The bytes of `run(p: i32, n: i32) -> i32`: 1 when any of the n float32 values at byte address p
 * is NaN or ±Infinity (every exponent bit set), else 0. Sixteen values per iteration, OR-ing the
 * lane masks, so the loop has no branch on the data; then the last 0–15 one at a time.
 */
function encodeNonFiniteScan(shared: boolean): Uint8Array {
  const P = 0, N = 1, OFF = 2, END_AT = 3, ACC = 4, MASK = 5, X = 6;
  const lanes = (at: number) => [
    LOCAL_GET, ACC, LOCAL_GET, P, LOCAL_GET, OFF, I32_ADD, ...V128_LOAD, ...uleb(at), LOCAL_GET, MASK, ...V128_AND, LOCAL_GET, MASK, ...I32X4_EQ, ...V128_OR, LOCAL_SET, ACC,
  ];
  const body = [
    I32_CONST, ...sleb(EXPONENT), ...I32X4_SPLAT, LOCAL_SET, MASK,
    LOCAL_GET, N, I32_CONST, ...sleb(-16), I32_AND, I32_CONST, 2, I32_SHL, LOCAL_SET, END_AT,
    BLOCK, VOID, LOOP, VOID,
    LOCAL_GET, OFF, LOCAL_GET, END_AT, I32_GE_U, BR_IF, 1,
    ...lanes(0), ...lanes(16), ...lanes(32), ...lanes(48),
    LOCAL_GET, OFF, I32_CONST, ...sleb(64), I32_ADD, LOCAL_SET, OFF,
    BR, 0, END, END,
    LOCAL_GET, ACC, ...V128_ANY_TRUE, LOCAL_SET, X,
    LOCAL_GET, N, I32_CONST, 2, I32_SHL, LOCAL_SET, END_AT,
    BLOCK, VOID, LOOP, VOID,
    LOCAL_GET, OFF, LOCAL_GET, END_AT, I32_GE_U, BR_IF, 1,
    LOCAL_GET, X, LOCAL_GET, P, LOCAL_GET, OFF, I32_ADD, ...I32_LOAD, 0, I32_CONST, ...sleb(EXPONENT), I32_AND, I32_CONST, ...sleb(EXPONENT), I32_EQ, I32_OR, LOCAL_SET, X,
    LOCAL_GET, OFF, I32_CONST, 4, I32_ADD, LOCAL_SET, OFF,
    BR, 0, END, END,
    LOCAL_GET, X,
    END,
  ];
  // Locals after the two parameters: OFF, END_AT (i32); ACC, MASK (v128); X (i32).
  const fn = [3, 2, I32, 2, V128, 1, I32, ...body];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 2, I32, I32, 1, I32]),
    ...section(2, [1, ...name('env'), ...name('memory'), 0x02, ...(shared ? [0x03, 0, ...uleb(MAX_PAGES)] : [0x00, 0])]),
    ...section(3, [1, 0]),
    ...section(7, [1, ...name('run'), 0x00, 0]),
    ...section(10, [1, ...uleb(fn.length), ...fn]),
  ]);
}

/**
 * `scan(a, start, end)`: whether a[start, end) holds a NaN or ±Infinity, for an array that lives in
 * the kernels' memory (the caller checks, with inKernelMemory). Null when this runtime has no SIMD.
 */
export function compileNonFiniteScan(): ((a: Float32Array, start: number, end: number) => boolean) | null {
  const heap = kernelHeap();
  if (!wasm || !heap) return null;
  try {
    const instance = new wasm.Instance(new wasm.Module(encodeNonFiniteScan(heap.shared)), { env: { memory: heap.memory } });
    const run = instance.exports.run as (p: number, n: number) => number;
    return (a, start, end) => run(a.byteOffset + 4 * start, end - start) !== 0;
  } catch {
    return null;
  }
}
