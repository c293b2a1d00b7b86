/**
 * The Module base: named parameters, nested modules, train/eval mode and state dicts.
 *
 * As in PyTorch, a module's parameters and submodules are found from its own fields, in the order
 * they were assigned: a field holding a Tensor that requires grad is a parameter, a field holding a
 * Module is a child. So the order — and with it the flat parameter layout — follows from the model
 * definition alone, and two processes building the same model agree on it without talking.
 */
import { fileError, fmtShape, opError } from '../errors.js';
import { IntTensor, Tensor } from '../autograd/tensor.js';

export abstract class Module<In = Tensor> {
  /** Whether the module is in training mode (dropout active). */
  training = true;

  /** Computes the module's output. */
  abstract forward(input: In): Tensor;

  /** Child modules by name, in assignment order. Sequential names them "0", "1", …. */
  namedChildren(): Array<[string, Module<any>]> {
    return Object.entries(this).filter((e): e is [string, Module<any>] => e[1] instanceof Module);
  }

  /** Parameters by dotted name (`0.weight`, `encoder.bias`), in a stable order. */
  namedParameters(prefix = ''): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    for (const [key, value] of Object.entries(this)) {
      if (value instanceof Tensor && value.requiresGrad) out.push([prefix + key, value]);
    }
    for (const [name, child] of this.namedChildren()) out.push(...child.namedParameters(`${prefix}${name}.`));
    return out;
  }

  /** The parameters, in the order of namedParameters(). */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Sets training mode on this module and every descendant. */
  train(mode = true): this {
    this.training = mode;
    for (const [, child] of this.namedChildren()) child.train(mode);
    return this;
  }

  /** Evaluation mode: dropout off. */
  eval(): this {
    return this.train(false);
  }

  /** Zeroes every parameter's gradient in place. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /** Parameters by name, sharing their data (no copy): PyTorch's `state_dict()`. */
  stateDict(): Record<string, Tensor> {
    return Object.fromEntries(this.namedParameters());
  }

  /**
   * Copies values from a state dict into the parameters. Every name and shape must match (strict,
   * as PyTorch's default); the error names the missing, unexpected or mismatched entries and the
   * source (for example a file name).
   */
  loadStateDict(state: Record<string, Tensor | IntTensor>, source = 'state dict'): void {
    const own = this.namedParameters();
    const names = new Set(own.map(([n]) => n));
    const missing = own.filter(([n]) => !(n in state)).map(([n]) => n);
    const unexpected = Object.keys(state).filter((n) => !names.has(n));
    if (missing.length > 0 || unexpected.length > 0) {
      const parts = [];
      if (missing.length > 0) parts.push(`missing keys: ${missing.join(', ')}`);
      if (unexpected.length > 0) parts.push(`unexpected keys: ${unexpected.join(', ')}`);
      throw fileError(source, `does not match the model (${parts.join('; ')})`);
    }
    for (const [name, p] of own) {
      const v = state[name]!;
      if (!(v instanceof Tensor)) throw fileError(source, `'${name}' holds integers; the parameter is float32`);
      if (v.shape.length !== p.shape.length || v.shape.some((d, i) => d !== p.shape[i])) {
        throw fileError(source, `'${name}' has shape ${fmtShape(v.shape)}, the model's parameter has shape ${fmtShape(p.shape)}`);
      }
    }
    for (const [name, p] of own) p.data.set(state[name]!.data as Float32Array);
  }
}

/** A guard for layer constructors: sizes must be positive integers. */
export function checkSize(layer: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) throw opError(layer, `${name} must be a positive integer, got ${value}`);
}
