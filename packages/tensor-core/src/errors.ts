/**
 * Every error tensor-core throws is made here, so that messages share one form: what was expected,
 * what was found, and where (the op, the file, the field).
 */

/** Formats a shape as PyTorch prints it: [64, 100]. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** An error in the arguments of an op: `matmul: inner dimensions differ: a is [2, 3], b is [4, 5]`. */
export function opError(op: string, message: string): Error {
  return new Error(`${op}: ${message}`);
}

/** An error in a file being read: `model.safetensors: header length 999 exceeds file size 120`. */
export function fileError(file: string, message: string): Error {
  return new Error(`${file}: ${message}`);
}
