// Compiles the AssemblyScript GEMM (assembly/gemm.ts) four times:
//   wasm/gemm.wasm          WebAssembly SIMD: f32x4 multiply then add
//   wasm/gemm-relaxed.wasm  the same source with relaxed SIMD: f32x4.relaxed_madd, one fused
//                           multiply-add where the CPU has FMA (see madd() in assembly/gemm.ts)
//   wasm/gemm-shared.wasm, wasm/gemm-relaxed-shared.wasm
//                           the same two importing a shared memory instead of owning one, so a
//                           thread can multiply arrays that live in another package's shared
//                           WebAssembly memory in place (useSharedMemory in src/kernels/select.ts)
// Run by the package's `build` script before `tsc -b`; the TypeScript side loads the files at
// runtime (src/kernels/wasm-backend.ts), preferring the relaxed one when the engine validates it,
// and falls back to plain JS when neither is there.
//
// Usage: node scripts/build-wasm.js [extra asc flags]   e.g. --textFile wasm/gemm.wat to read the output
import asc from 'assemblyscript/asc';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
mkdirSync(new URL('../wasm/', import.meta.url), { recursive: true });

const common = [
  'assembly/gemm.ts',
  '--optimizeLevel', '3',
  '--shrinkLevel', '0',
  '--noAssert',
  '--runtime', 'stub',
  // No imports: nothing in the kernel can abort, so the module instantiates with an empty import object.
  '--use', 'abort=',
  '--baseDir', root,
];

// The kernel writes only where its pointer arguments say, so the imported memory's contents are
// the importer's: nothing is initialised at instantiation (no data segments).
const shared = ['--importMemory', '--sharedMemory', '--initialMemory', '0', '--maximumMemory', '65536'];
for (const [outFile, features, extra] of [
  ['wasm/gemm.wasm', ['simd'], []],
  ['wasm/gemm-relaxed.wasm', ['simd', 'relaxed-simd'], []],
  ['wasm/gemm-shared.wasm', ['simd', 'threads'], shared],
  ['wasm/gemm-relaxed-shared.wasm', ['simd', 'relaxed-simd', 'threads'], shared],
]) {
  const args = [...common, '--outFile', outFile, ...features.flatMap((f) => ['--enable', f]), ...extra, ...process.argv.slice(2)];
  // asc reports its diagnostics on stderr itself.
  const { error } = await asc.main(args, { stdout: process.stdout, stderr: process.stderr });
  if (error) {
    console.error(`build-wasm: asc failed on ${outFile}: ${error.message}`);
    process.exit(1);
  }
  console.log(`build-wasm: wrote ${outFile}`);
}
