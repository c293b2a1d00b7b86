// Compiles the AssemblyScript GEMM (assembly/gemm.ts) to wasm/gemm.wasm with WebAssembly SIMD.
// Run by the package's `build` script before `tsc -b`; the TypeScript side loads the file at runtime
// (src/kernels/wasm-backend.ts) and falls back to plain JS when it is missing.
//
// Usage: node scripts/build-wasm.js [extra asc flags]   e.g. --textFile wasm/gemm.wat to read the output
import asc from 'assemblyscript/asc';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
mkdirSync(new URL('../wasm/', import.meta.url), { recursive: true });

const args = [
  'assembly/gemm.ts',
  '--outFile', 'wasm/gemm.wasm',
  '--enable', 'simd',
  '--optimizeLevel', '3',
  '--shrinkLevel', '0',
  '--noAssert',
  '--runtime', 'stub',
  // No imports: nothing in the kernel can abort, so the module instantiates with an empty import object.
  '--use', 'abort=',
  '--baseDir', root,
  ...process.argv.slice(2),
];

// asc reports its diagnostics on stderr itself.
const { error } = await asc.main(args, { stdout: process.stdout, stderr: process.stderr });
if (error) {
  console.error(`build-wasm: asc failed: ${error.message}`);
  process.exit(1);
}
console.log('build-wasm: wrote wasm/gemm.wasm');
