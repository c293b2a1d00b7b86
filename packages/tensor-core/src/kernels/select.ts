/**
 * Which matmul backend the kernel tier uses.
 *
 * By default: WebAssembly relaxed SIMD (fused multiply-add) when wasm/gemm-relaxed.wasm loads, else
 * WebAssembly SIMD when wasm/gemm.wasm loads, else plain JS. The environment variable LOOM_BACKEND
 * forces one:
 *
 *   LOOM_BACKEND=js         always the portable TypeScript kernel
 *   LOOM_BACKEND=wasm       always the best WebAssembly kernel, even for tiny products; throws when
 *                           neither module loads
 *   LOOM_BACKEND=wasm-simd  always plain WebAssembly SIMD (no FMA: the same bits on every machine)
 *   unset or 'auto'         the best WebAssembly kernel when available (tiny products on js, see
 *                           below), else js
 *
 * Tiny products go to js under 'auto'. A wasm call has a fixed cost of about 130 ns (crossing into
 * wasm, copying, packing) that js does not pay. On the development machine js was faster below
 * M·K·N = 128 multiply-adds (1×1×1: 33 vs 130 ns; 4×4×4: 80 vs 124 ns), the two were even at 128,
 * and wasm-simd was faster from 256 up (8×8×8: 180 vs 400 ns; the reference model's 64×100×50: 9×).
 */
import { existsSync } from 'node:fs';
import { opError } from '../errors.js';
import type { KernelBackend } from './backend.js';
import { jsBackend } from './matmul.js';
import { WasmBackend, loadRelaxedWasmBackend, loadWasmBackend, relaxedWasmPath, wasmPath, type SharedMemoryHandle } from './wasm-backend.js';

/**
 * The backend for a LOOM_BACKEND value ('js', 'wasm', 'wasm-simd', or 'auto'/undefined for the best
 * available).
 *
 * @example
 * defaultBackend('js').name; // 'js'
 * defaultBackend().name; // 'wasm-relaxed-simd' once the package is built, else 'js'
 */
export function defaultBackend(choice: string | undefined = readEnv()): KernelBackend {
  switch (choice ?? 'auto') {
    case 'js':
      return jsBackend;
    case 'wasm':
    case 'wasm-simd': {
      const wasm = choice === 'wasm' ? bestWasm() : loadWasmBackend();
      if (wasm === null) {
        const tried = choice === 'wasm' ? `neither ${relaxedWasmPath.pathname} nor ${wasmPath.pathname} compiles` : `${wasmPath.pathname} does not compile`;
        const found = existsSync(wasmPath)
          ? `${tried} here (no WebAssembly SIMD?)`
          : `${wasmPath.pathname} is missing (build the package: node scripts/build-wasm.js)`;
        throw opError('LOOM_BACKEND', `'${choice}' expects a WebAssembly SIMD kernel to load, but ${found}`);
      }
      return wasm;
    }
    case 'auto':
    case '': {
      const wasm = bestWasm();
      return wasm === null ? jsBackend : routeTiny(wasm, jsBackend, TINY);
    }
    default:
      throw opError('LOOM_BACKEND', `expected 'js', 'wasm', 'wasm-simd' or 'auto', got '${choice}'`);
  }
}

/** Relaxed SIMD (fused multiply-add) when it loads, else plain SIMD, else null. */
function bestWasm(): KernelBackend | null {
  return loadRelaxedWasmBackend() ?? loadWasmBackend();
}

/** Products with fewer multiply-adds (M·K·N) than this run on js under 'auto'; measured above. */
export const TINY = 128;

/**
 * A backend that runs products of fewer than `threshold` multiply-adds on `small` and the rest on
 * `large`, named after `large`. Deterministic: a given shape always takes the same path.
 */
export function routeTiny(large: KernelBackend, small: KernelBackend, threshold: number): KernelBackend & { readonly large: KernelBackend } {
  return {
    name: large.name,
    large,
    matmul(a, b, out, m, k, n, transA, transB, accumulate) {
      const backend = m * k * n < threshold ? small : large;
      backend.matmul(a, b, out, m, k, n, transA, transB, accumulate);
    },
  };
}

/** The backend every matmul in this process uses, chosen once at import. */
export const backend: KernelBackend = defaultBackend();

/**
 * Makes this thread's products run in place on arrays that live in a shared WebAssembly memory
 * another package owns — typically a worker thread whose parameters and gradients are views of
 * @loom/optimizer's memory (see @loom/parameter-server's local runs): the weights are then read,
 * and their gradients written, where they are, instead of being copied into the GEMM's own memory
 * and back on every call (an O(parameters) cost per step that does not shrink with the batch).
 * Operands elsewhere are copied through `handle`'s scratch region. The results are the same bits.
 * Returns false, changing nothing, when the backend is not WebAssembly or cannot use that memory;
 * `null` detaches.
 *
 * @example
 * useSharedMemory({ memory, scratchAt: scratch.byteOffset, scratchBytes: scratch.byteLength });
 */
export function useSharedMemory(handle: SharedMemoryHandle | null): boolean {
  const wasm = backend instanceof WasmBackend ? backend : (backend as { large?: KernelBackend }).large;
  if (!(wasm instanceof WasmBackend)) return false;
  if (handle === null) {
    wasm.detach();
    return true;
  }
  return wasm.attach(handle);
}

function readEnv(): string | undefined {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.LOOM_BACKEND;
}
