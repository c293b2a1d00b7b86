/**
 * What the functional cores share: the contract every step function follows, argument checks,
 * float32 rounding, and the choice between the plain JavaScript loop and the WebAssembly SIMD
 * kernel (which give the same bits, so the choice only changes speed).
 */
import { argError } from '../errors.js';
import { fmaLowering, type Kernel } from '../simd/kernel.js';

/** Rounds a float64 to the nearest float32: one float32 operation is `f(a op b)`. */
export const f = Math.fround;

/**
 * a·b + c rounded once to float32, for float32 a, b, c: PyTorch's CPU kernels compute
 * `add(x, alpha=a)` and `addcmul` with fused multiply-adds, and matching them keeps long
 * trajectories bit-identical to PyTorch's.
 *
 * The product of two float32 values is exact in float64 (24 + 24 bits), but the sum need not be,
 * so `Math.fround(a * b + c)` rounds twice. That differs from rounding once only when the float64
 * sum s lands exactly halfway between two float32 values while the exact sum does not (the first
 * rounding made a tie that the second then breaks to even): then the exact sum's side of s, the
 * sign of TwoSum's error, picks the neighbour. The fast path costs a Veltkamp split (s has at most
 * 25 significant bits iff splitting at 25 bits leaves it whole).
 */
export function fma(a: number, b: number, c: number): number {
  const p = a * b; // exact
  const s = p + c; // rounded to float64
  const r = f(s);
  if (r === s || !halfwayBetweenFloat32s(s)) return r;
  const t = s - p, err = p - (s - t) + (c - t); // TwoSum: p + c = s + err exactly
  if (err === 0) return r;
  // The other float32 neighbour of s (past FLT_MAX, s rounded to ±Infinity and the other is ±FLT_MAX).
  const other = Number.isFinite(r) ? 2 * s - r : Math.sign(s) * FLT_MAX;
  return r > s === err > 0 ? r : other;
}

const FLT_MAX = 3.4028234663852886e38;

/** Whether a float64 that is not a float32 lies exactly halfway between two float32 values. */
function halfwayBetweenFloat32s(s: number): boolean {
  // Below 2⁻¹²⁵ float32 values are the multiples of 2⁻¹⁴⁹, halfway points the odd multiples of 2⁻¹⁵⁰.
  if (Math.abs(s) < 2 ** -125) {
    const y = s * 2 ** 150;
    return Number.isInteger(y) && y % 2 !== 0;
  }
  // Above, a halfway point has 25 significant bits (one more than a float32).
  const c = s * 134217729; // 2²⁸ + 1: c − (c − s) is s rounded to 53 − 28 = 25 bits
  return c - (c - s) === s;
}

/** The state arrays of one optimizer, by name (`expAvg`, `momentumBuffer`, ...); each as long as the parameters. */
export type StateArrays = { readonly [key: string]: Float32Array | undefined };

/**
 * A step function: updates `params[start, end)` and the state arrays over the same range in place,
 * reading `grads[start, end)`. `step` is the 1-based number of this step (PyTorch increments its
 * step count before using it). Elements outside [start, end) are neither read nor written, and each
 * element's result depends only on that element, so any split of a buffer into slices, stepped in
 * any order or in parallel, gives the same bits as one call over the whole buffer.
 */
export type StepFunction<O> = (
  params: Float32Array,
  grads: Float32Array,
  state: StateArrays,
  options: O,
  step: number,
  start?: number,
  end?: number,
) => void;

/**
 * A step whose gradient is the weighted sum Σₖ weights[k]·inputs[k] — a sync reduction of several
 * workers' gradients — computed as `weightedSum` computes it, so the same bits as `weightedSum`
 * into inputs[0] followed by the step, and fused into the step's kernel when there is one (the sum
 * is then written nowhere). Without a kernel the sum goes into inputs[0] first, so afterwards
 * inputs[0][start, end) holds either its own values or the sum: treat it as scratch.
 */
export type SumStepFunction<O> = (
  params: Float32Array,
  inputs: readonly Float32Array[],
  weights: ArrayLike<number>,
  state: StateArrays,
  options: O,
  step: number,
  start?: number,
  end?: number,
) => void;

/**
 * How a step function is described to the class API and to code that manages state itself
 * (a worker thread or a parameter server): defaults, validation, which state arrays it needs and
 * how they start, and the step.
 */
export interface Algorithm<O extends object> {
  /** PyTorch's class name: 'Adam'. */
  readonly name: string;
  /** PyTorch's defaults, in camelCase. A key whose default is `undefined` must be given (SGD's lr). */
  readonly defaults: Readonly<O>;
  /** Throws an OptimizerError naming the first invalid value. */
  validate(options: O): void;
  /** The state arrays a parameter needs under these options, in a fixed order. */
  stateKeys(options: O): readonly string[];
  /** The value a new state array is filled with (0, or Adagrad's initialAccumulatorValue). */
  initialValue(key: string, options: O): number;
  /**
   * True when step 1 means "the state was just created" rather than "the first step ever" (SGD: on
   * step 1 the momentum buffer is set to the gradient, as PyTorch does when its buffer is None), so
   * the class restarts a parameter's step count when it creates a state array for it.
   */
  readonly countsStepsFromNewState?: boolean;
  /** The functional core. */
  readonly step: StepFunction<O>;
  /** The functional core with a summed gradient, fused (see SumStepFunction; `stepWithSum` uses it). */
  readonly stepSum?: SumStepFunction<O>;
}

export type KernelBackend = 'auto' | 'js' | 'wasm';
let backend: KernelBackend = 'auto';

/**
 * Chooses how step functions run: 'wasm' (WebAssembly SIMD, when the runtime has it), 'js' (the
 * plain loops), or 'auto' (the default: WebAssembly for slices of 256 elements or more). Results are
 * bitwise identical either way; this exists for benchmarks and tests.
 */
export function setKernelBackend(b: KernelBackend): void {
  if (b !== 'auto' && b !== 'js' && b !== 'wasm') throw argError('setKernelBackend', `unknown backend '${String(b)}' (expected 'auto', 'js' or 'wasm')`);
  backend = b;
}

export function getKernelBackend(): KernelBackend {
  return backend;
}

const WASM_MIN_ELEMENTS = 256;

/** Returns the kernel for this key (compiling it on first use), or null when the JS loop should run. */
export function pickKernel(cache: Map<string, Kernel | null>, key: string, compile: () => Kernel | null, n: number): Kernel | null {
  if (backend === 'js' || (backend === 'auto' && n < WASM_MIN_ELEMENTS)) return null;
  const lowered = `${fmaLowering()}:${key}`;
  let k = cache.get(lowered);
  if (k === undefined) {
    k = compile();
    cache.set(lowered, k);
  }
  return k;
}

/**
 * Checks a step call's arguments in O(number of arrays): every array as long as `params`, a valid
 * step number, and 0 ≤ start ≤ end ≤ length. Returns the resolved `end`.
 */
export function checkStepArgs(
  fn: string,
  params: Float32Array,
  grads: Float32Array,
  state: StateArrays,
  keys: readonly string[],
  step: number,
  start: number,
  end: number | undefined,
): number {
  if (!(params instanceof Float32Array)) throw argError(fn, `params must be a Float32Array, got ${describe(params)}`);
  if (!(grads instanceof Float32Array)) throw argError(fn, `grads must be a Float32Array, got ${describe(grads)}`);
  const n = params.length;
  if (grads.length !== n) throw argError(fn, `grads has length ${grads.length}, params has length ${n}`);
  for (const key of keys) {
    const s = state[key];
    if (!(s instanceof Float32Array)) throw argError(fn, `state.${key} must be a Float32Array of length ${n}, got ${describe(s)}`);
    if (s.length !== n) throw argError(fn, `state.${key} has length ${s.length}, params has length ${n}`);
  }
  if (!Number.isInteger(step) || step < 1) throw argError(fn, `step must be an integer ≥ 1 (the number of this step), got ${step}`);
  const e = end ?? n;
  if (!Number.isInteger(start) || !Number.isInteger(e) || start < 0 || start > e || e > n) {
    throw argError(fn, `slice [${start}, ${e}) is not within [0, ${n}]`);
  }
  return e;
}

function describe(v: unknown): string {
  if (v === undefined || v === null) return String(v);
  if (ArrayBuffer.isView(v)) return v.constructor.name;
  return typeof v;
}
