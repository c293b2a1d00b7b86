/**
 * The class API: parameter groups, per-parameter state, step, zeroGrad and state dicts, as in
 * PyTorch's torch/optim/optimizer.py. It is a thin shell around the functional cores: all the maths
 * is in core/, and this file only decides which slices of which arrays to hand them.
 *
 * Flat parameters: when consecutive parameters of a group are contiguous views of one buffer (and
 * so are their gradients and, because state is allocated in one piece per step, their state arrays),
 * the whole contiguous range is stepped in one call. Otherwise each parameter is its own call. The
 * results are the same bits either way, because every step function is element-wise.
 *
 * When parameters live in the optimizer memory (`optimizerMemory.alloc`, `allocateFlat`), their
 * state arrays are allocated there too, so the kernels step all of them in place.
 */
import type { Algorithm } from './core/common.js';
import { OptimizerError, fmtValue, stateDictError } from './errors.js';
import { resolveOptions } from './options.js';
import { optimizerMemory } from './simd/memory.js';

/**
 * What an optimizer needs from a parameter: its values and its gradient, as Float32Arrays of the
 * same length. Loom's Tensor has this shape; so does `{ data, grad: { data } }` over plain arrays.
 */
export interface ParamLike {
  data: Float32Array;
  grad: { data: Float32Array } | null;
}

/** A parameter group as the optimizer holds it: the hyperparameters, mutable (schedulers set `lr`), and the parameters. */
export type ParamGroup<O> = O & {
  params: ParamLike[];
  /** The learning rate schedulers start from, set by the first scheduler attached to this optimizer. */
  initialLr?: number;
};

/** A parameter group as a user passes it: parameters plus any hyperparameters that differ from the optimizer's. */
export type ParamGroupSpec<O> = Partial<O> & { params: Iterable<ParamLike>; initialLr?: number };

/** One parameter's saved state: its step count and its state arrays (`expAvg`, ...). */
export interface SavedParamState {
  step: number;
  [key: string]: number | Float32Array | readonly number[];
}

/**
 * An optimizer's state as plain data, like PyTorch's: parameters are referred to by position
 * (counting through the groups in order), never by object, so the dict can be saved and loaded
 * into an optimizer over a different copy of the same model.
 */
export interface StateDict<O> {
  state: { [index: number]: SavedParamState };
  paramGroups: Array<O & { params: number[]; initialLr?: number }>;
}

interface ParamState {
  /** Steps taken by this parameter (the next step is step + 1). */
  step: number;
  arrays: Record<string, Float32Array>;
}

const GROUP_KEYS = ['params', 'initialLr'];

/**
 * The base class of SGD, RMSprop, Adam, AdamW and Adagrad. Subclasses only name their algorithm.
 *
 * @example
 * const p = { data: Float32Array.of(1, 2), grad: { data: Float32Array.of(0.5, -0.5) } };
 * const opt = new Adam([p], { lr: 0.1 });
 * opt.step();     // p.data moves against the gradient
 * opt.zeroGrad(); // p.grad.data is zeros again
 */
export class Optimizer<O extends object> {
  readonly algorithm: Algorithm<O>;
  /** The hyperparameters of groups that do not set their own. */
  readonly defaults: Readonly<O>;
  readonly paramGroups: ParamGroup<O>[] = [];
  private readonly state = new Map<ParamLike, ParamState>();
  /** The state buffers this optimizer allocated in optimizerMemory, freed by dispose(). */
  private readonly owned: Float32Array[] = [];

  constructor(algorithm: Algorithm<O>, params: Iterable<ParamLike> | Iterable<ParamGroupSpec<O>>, options: Partial<O> = {}) {
    this.algorithm = algorithm;
    if (options === null || typeof options !== 'object') throw new OptimizerError(`${algorithm.name}: options must be an object, got ${fmtValue(options)}`);
    // Defaults may leave a required value (SGD's lr) to the groups: validate it per group.
    const required = Object.keys(algorithm.defaults).filter((k) => (algorithm.defaults as Record<string, unknown>)[k] === undefined);
    const given = params === null || typeof params !== 'object' || !(Symbol.iterator in params) ? null : [...params];
    if (given === null) throw new OptimizerError(`${algorithm.name}: params must be an iterable of parameters or parameter groups, got ${fmtValue(params)}`);
    if (given.length === 0) throw new OptimizerError(`${algorithm.name}: optimizer got an empty parameter list`);
    const groups: ParamGroupSpec<O>[] = isGroupSpec(given[0]) ? (given as ParamGroupSpec<O>[]) : [{ params: given as ParamLike[] } as unknown as ParamGroupSpec<O>];
    this.defaults = mergeDefaults(algorithm, options, required);
    for (const g of groups) this.addParamGroup(g);
  }

  /** Adds a group of parameters, with hyperparameters that default to the optimizer's. */
  addParamGroup(spec: ParamGroupSpec<O>): void {
    const name = this.algorithm.name;
    if (!isGroupSpec(spec)) throw new OptimizerError(`${name}: a parameter group must be an object with a params list, got ${fmtValue(spec)}`);
    const params = [...spec.params];
    const index = this.paramGroups.length;
    if (params.length === 0) throw new OptimizerError(`${name}: parameter group ${index} has no parameters`);
    const seen = new Set(this.paramGroups.flatMap((g) => g.params));
    params.forEach((p, i) => {
      checkParam(name, p, index, i);
      if (seen.has(p)) throw new OptimizerError(`${name}: parameter ${i} of group ${index} appears more than once (parameter groups must not overlap)`);
      seen.add(p);
    });
    const options = resolveOptions(this.algorithm, spec, this.defaults, GROUP_KEYS);
    const group = { ...options, params } as ParamGroup<O>;
    if (spec.initialLr !== undefined) group.initialLr = spec.initialLr;
    this.paramGroups.push(group);
  }

  /**
   * Performs one optimization step on every parameter that has a gradient; parameters whose grad
   * is null are skipped (their step count does not advance). If `closure` is given it is called
   * first, to recompute the loss, and its result is returned.
   */
  step(closure?: () => number): number | undefined {
    const loss = closure ? closure() : undefined;
    const alg = this.algorithm;
    this.paramGroups.forEach((group, gi) => {
      alg.validate(group); // hyperparameters may have been changed since construction
      const keys = alg.stateKeys(group);
      const live: ParamLike[] = [];
      group.params.forEach((p, pi) => {
        if (p.grad === null || p.grad === undefined) return;
        checkParam(alg.name, p, gi, pi);
        live.push(p);
      });
      this.ensureState(live, keys, group);
      // Split the parameters into runs that are contiguous in every array and share a step count.
      let i = 0;
      while (i < live.length) {
        let j = i + 1;
        const st = this.state.get(live[i]!)!;
        while (j < live.length && this.continues(live[j - 1]!, live[j]!, keys, st.step)) j++;
        const run = live.slice(i, j);
        const params = span(run.map((p) => p.data));
        const grads = span(run.map((p) => p.grad!.data));
        const arrays: Record<string, Float32Array> = {};
        for (const k of keys) arrays[k] = span(run.map((p) => this.state.get(p)!.arrays[k]!));
        alg.step(params, grads, arrays, group, st.step + 1, 0, params.length);
        for (const p of run) this.state.get(p)!.step++;
        i = j;
      }
    });
    return loss;
  }

  /** Sets every gradient to zero, or to null with `setToNone` (then step skips the parameter until a new gradient arrives). */
  zeroGrad(setToNone = false): void {
    for (const g of this.paramGroups) {
      for (const p of g.params) {
        if (p.grad === null) continue;
        if (setToNone) p.grad = null;
        else p.grad.data.fill(0);
      }
    }
  }

  /**
   * Forgets all state (step counts and state arrays, as in a new optimizer) and frees the state
   * arrays this optimizer allocated in optimizerMemory. Call it when the optimizer is done with if
   * its parameters live there; otherwise the garbage collector reclaims the state. Stepping again
   * starts from fresh state.
   */
  dispose(): void {
    this.state.clear();
    for (const a of this.owned.splice(0)) optimizerMemory.free(a);
  }

  /**
   * The step count and state arrays of one parameter (the live arrays, not copies), or undefined
   * before its first step. The arrays stay valid until loadStateDict or dispose.
   */
  getState(param: ParamLike): { readonly step: number; readonly arrays: Readonly<Record<string, Float32Array>> } | undefined {
    return this.state.get(param);
  }

  /** A copy of the optimizer's state: step counts and state arrays per parameter position, and each group's hyperparameters. */
  stateDict(): StateDict<O> {
    const state: StateDict<O>['state'] = {};
    const paramGroups: StateDict<O>['paramGroups'] = [];
    let index = 0;
    for (const group of this.paramGroups) {
      const { params, ...hyper } = group;
      const indices: number[] = [];
      for (const p of params) {
        const s = this.state.get(p);
        if (s) {
          const saved: SavedParamState = { step: s.step };
          for (const [k, a] of Object.entries(s.arrays)) saved[k] = a.slice();
          state[index] = saved;
        }
        indices.push(index++);
      }
      paramGroups.push({ ...copyHyper(hyper), params: indices } as StateDict<O>['paramGroups'][number]);
    }
    return { state, paramGroups };
  }

  /**
   * Replaces the optimizer's state and hyperparameters with a saved dict. Everything is checked
   * before anything changes: the number of groups and of parameters in each, hyperparameter names
   * and values, state key names, array lengths and step counts. Arrays may be Float32Array or
   * number[] (as after a JSON round trip); values are copied.
   */
  loadStateDict(dict: StateDict<O>): void {
    const alg = this.algorithm;
    if (dict === null || typeof dict !== 'object' || !Array.isArray(dict.paramGroups) || dict.state === null || typeof dict.state !== 'object') {
      throw stateDictError(`expected { state, paramGroups }, got ${fmtValue(dict)}`);
    }
    if (dict.paramGroups.length !== this.paramGroups.length) {
      throw stateDictError(`the state dict has ${dict.paramGroups.length} parameter groups, the optimizer has ${this.paramGroups.length}`);
    }
    // Positions → parameters, in the order of the saved groups (as PyTorch zips them).
    const byIndex = new Map<number, { param: ParamLike; group: number }>();
    const options: O[] = [];
    dict.paramGroups.forEach((saved, gi) => {
      const group = this.paramGroups[gi]!;
      if (saved === null || typeof saved !== 'object' || !Array.isArray(saved.params)) throw stateDictError(`parameter group ${gi} has no params list`);
      if (saved.params.length !== group.params.length) {
        throw stateDictError(`parameter group ${gi} has ${saved.params.length} parameters in the state dict, ${group.params.length} in the optimizer`);
      }
      saved.params.forEach((index, pi) => {
        if (!Number.isInteger(index) || index < 0) throw stateDictError(`parameter group ${gi} lists an invalid parameter index ${fmtValue(index)}`);
        if (byIndex.has(index)) throw stateDictError(`parameter index ${index} appears more than once`);
        byIndex.set(index, { param: group.params[pi]!, group: gi });
      });
      try {
        options.push(resolveOptions(alg, saved, alg.defaults, GROUP_KEYS));
      } catch (e) {
        throw stateDictError(`parameter group ${gi}: ${(e as Error).message}`);
      }
    });
    const loaded = new Map<ParamLike, { step: number; values: Record<string, ArrayLike<number>> }>();
    for (const [key, saved] of Object.entries(dict.state)) {
      const index = Number(key);
      const target = byIndex.get(index);
      if (!target) throw stateDictError(`state for parameter ${key}, but the optimizer has parameters 0 to ${byIndex.size - 1}`);
      if (saved === null || typeof saved !== 'object') throw stateDictError(`state of parameter ${index} is ${fmtValue(saved)}`);
      const expected = alg.stateKeys(options[target.group]!);
      const length = target.param.data.length;
      const { step, ...arrays } = saved;
      if (!Number.isInteger(step) || (step as number) < 0) throw stateDictError(`state of parameter ${index} has an invalid step count ${fmtValue(step)}`);
      for (const k of Object.keys(arrays)) {
        if (!expected.includes(k)) {
          throw stateDictError(`unknown state key '${k}' for parameter ${index} of ${alg.name} (expected: step${expected.map((e) => ', ' + e).join('')})`);
        }
      }
      const values: Record<string, ArrayLike<number>> = {};
      for (const k of expected) {
        const a = arrays[k];
        if (a === undefined) throw stateDictError(`state of parameter ${index} has no '${k}' (${alg.name} with these options needs step${expected.map((e) => ', ' + e).join('')})`);
        if (!(a instanceof Float32Array) && !(Array.isArray(a) && a.every((x) => typeof x === 'number'))) {
          throw stateDictError(`state '${k}' of parameter ${index} must be a Float32Array or an array of numbers, got ${fmtValue(a)}`);
        }
        if (a.length !== length) throw stateDictError(`state '${k}' of parameter ${index} has length ${a.length}, the parameter has length ${length}`);
        values[k] = a as ArrayLike<number>;
      }
      loaded.set(target.param, { step: step as number, values });
    }
    // Everything checked: apply.
    this.paramGroups.forEach((group, gi) => Object.assign(group, options[gi]));
    dict.paramGroups.forEach((saved, gi) => {
      if (saved.initialLr !== undefined) this.paramGroups[gi]!.initialLr = saved.initialLr;
    });
    this.dispose();
    this.paramGroups.forEach((group) => {
      const params = group.params.filter((p) => loaded.has(p));
      this.ensureState(params, this.algorithm.stateKeys(group), group);
      for (const p of params) {
        const { step, values } = loaded.get(p)!;
        const st = this.state.get(p)!;
        st.step = step;
        for (const [k, v] of Object.entries(values)) st.arrays[k]!.set(v);
      }
    });
  }

  /**
   * Gives every parameter in `params` the state arrays `keys` it lacks, allocating one buffer per
   * key for all of them so that contiguous parameters get contiguous state — in optimizerMemory
   * when all their data is there, so that steps run in place.
   */
  private ensureState(params: readonly ParamLike[], keys: readonly string[], options: O): void {
    for (const p of params) if (!this.state.has(p)) this.state.set(p, { step: 0, arrays: {} });
    for (const key of keys) {
      const missing = params.filter((p) => this.state.get(p)!.arrays[key] === undefined);
      if (missing.length === 0) continue;
      const total = missing.reduce((n, p) => n + p.data.length, 0);
      const inMemory = missing.every((p) => optimizerMemory.contains(p.data));
      const buffer = inMemory ? optimizerMemory.alloc(total) : new Float32Array(total);
      if (inMemory) this.owned.push(buffer);
      const init = this.algorithm.initialValue(key, options);
      if (init !== 0) buffer.fill(init);
      let offset = 0;
      for (const p of missing) {
        const st = this.state.get(p)!;
        st.arrays[key] = buffer.subarray(offset, offset + p.data.length);
        offset += p.data.length;
        if (this.algorithm.countsStepsFromNewState) st.step = 0;
      }
    }
    for (const p of params) {
      const st = this.state.get(p)!;
      for (const key of keys) {
        if (st.arrays[key]!.length !== p.data.length) {
          throw new OptimizerError(`${this.algorithm.name}: a parameter changed length from ${st.arrays[key]!.length} to ${p.data.length} after its state was created`);
        }
      }
    }
  }

  /** Whether `next` can join the run that `prev` ends: same step count, and adjacent in every array. */
  private continues(prev: ParamLike, next: ParamLike, keys: readonly string[], step: number): boolean {
    const a = this.state.get(prev)!, b = this.state.get(next)!;
    if (b.step !== step) return false;
    if (!adjacent(prev.data, next.data) || !adjacent(prev.grad!.data, next.grad!.data)) return false;
    for (const k of keys) if (!adjacent(a.arrays[k]!, b.arrays[k]!)) return false;
    return true;
  }
}

/**
 * Whether `b` starts where `a` ends, in the same memory: the same buffer, or two of the buffer
 * objects the optimizer memory has had (each growth gives it a new, longer one).
 */
function adjacent(a: Float32Array, b: Float32Array): boolean {
  const sameMemory = a.buffer === b.buffer || (optimizerMemory.contains(a) && optimizerMemory.contains(b));
  return sameMemory && a.byteOffset + a.byteLength === b.byteOffset;
}

/** One view over adjacent arrays (the array itself when there is one), on the longest of their buffers. */
function span(arrays: readonly Float32Array[]): Float32Array {
  const first = arrays[0]!;
  if (arrays.length === 1) return first;
  const length = arrays.reduce((n, a) => n + a.length, 0);
  const buffer = arrays.reduce((b, a) => (a.buffer.byteLength > b.byteLength ? a.buffer : b), first.buffer);
  return new Float32Array(buffer, first.byteOffset, length);
}

function isGroupSpec(x: unknown): x is ParamGroupSpec<object> {
  return x !== null && typeof x === 'object' && 'params' in x && !('data' in x);
}

function checkParam(name: string, p: ParamLike, group: number, index: number): void {
  if (p === null || typeof p !== 'object' || !(p.data instanceof Float32Array)) {
    throw new OptimizerError(`${name}: parameter ${index} of group ${group} must be an object with data: Float32Array, got ${fmtValue(p)}`);
  }
  const g = p.grad;
  if (g === null || g === undefined) return;
  if (!(g.data instanceof Float32Array)) throw new OptimizerError(`${name}: gradient of parameter ${index} of group ${group} must have data: Float32Array, got ${fmtValue(g.data)}`);
  if (g.data.length !== p.data.length) {
    throw new OptimizerError(`${name}: gradient of parameter ${index} of group ${group} has length ${g.data.length}, the parameter has length ${p.data.length}`);
  }
}

/** The optimizer-wide defaults: unknown keys are errors; a required value may be left to the groups. */
function mergeDefaults<O extends object>(alg: Algorithm<O>, options: Partial<O>, required: readonly string[]): O {
  const missing = required.filter((k) => (options as Record<string, unknown>)[k] === undefined);
  if (missing.length === 0) return resolveOptions(alg, options);
  // Validate what was given by filling the missing required values with a valid placeholder, then drop them.
  const probe = resolveOptions(alg, { ...Object.fromEntries(missing.map((k) => [k, 0])), ...stripUndefined(options) });
  const out = { ...probe } as Record<string, unknown>;
  for (const k of missing) out[k] = undefined;
  return out as O;
}

function stripUndefined(o: object): object {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

function copyHyper(h: object): object {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Array.isArray(v) ? [...v] : v]));
}
