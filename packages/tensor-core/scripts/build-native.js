// Builds the optional native kernel backend (native/*.c → build/Release/loom_native.node) with
// node-gyp against the Node headers already on this machine. Nothing is downloaded.
//
// Run by the package's `install` script (so `pnpm install` builds it) and by its `build` script.
// It never fails the install: when something is missing (no C compiler, no make, no python3, no
// Node headers, no node-gyp) or the compile fails, it prints the reason once, on one line, and
// exits 0; Loom then uses the WebAssembly backend (src/kernels/select.ts). The compiler's full
// output goes to native-build.log beside this package's package.json.
//
// Usage: node scripts/build-native.js [--force] [--strict] [--dir=PATH]
//   --force   rebuild even when build/Release/loom_native.node is newer than its sources
//   --strict  exit 1 when the addon was not built (for a CI that requires it)
//   --dir     build the binding.gyp in PATH instead of this package (the fallback test uses a copy)
// LOOM_NATIVE=skip skips the build (as though no compiler were present).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const arg = (name) => process.argv.find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
const dir = resolve(arg('dir')?.split('=')[1] ?? fileURLToPath(new URL('..', import.meta.url)));
const addon = join(dir, 'build', 'Release', 'loom_native.node');
const log = join(dir, 'native-build.log');

/** Ends the script: `reason` null means built (or up to date). */
function done(reason, detail = '') {
  if (reason === null) process.exit(0);
  console.warn(`@loom/tensor-core: native backend not built (${reason}); Loom will use the WebAssembly backend.${detail}`);
  process.exit(arg('strict') ? 1 : 0);
}

/** The first of `names` found as an executable file on PATH, or null. */
function onPath(...names) {
  for (const name of names) {
    if (name.includes('/')) {
      if (existsSync(name)) return name;
      continue;
    }
    for (const d of (process.env.PATH ?? '').split(delimiter)) if (d && existsSync(join(d, name))) return join(d, name);
  }
  return null;
}

if (process.env.LOOM_NATIVE === 'skip') done('LOOM_NATIVE=skip');

// Up to date: the addon is newer than every source.
if (!arg('force') && existsSync(addon)) {
  const built = statSync(addon).mtimeMs;
  const sources = [join(dir, 'binding.gyp'), ...readdirSync(join(dir, 'native')).map((f) => join(dir, 'native', f))];
  if (sources.every((f) => statSync(f).mtimeMs < built)) done(null);
}

// What node-gyp needs on Linux and macOS, checked first so the reason printed is the real one
// rather than the last line of a failed make. CC / CXX, when set, name the compilers (first word).
const first = (v) => v?.trim().split(/\s+/)[0];
if (process.platform === 'win32') done('building the native backend on Windows is not supported yet');
if (!onPath(...[first(process.env.CC)].filter(Boolean), 'cc', 'gcc', 'clang')) done('no C compiler on PATH: cc, gcc or clang');
// node-gyp links with the C++ driver even for C sources.
if (!onPath(...[first(process.env.CXX)].filter(Boolean), 'c++', 'g++', 'clang++')) done('no C++ compiler driver on PATH to link with: c++, g++ or clang++');
if (!onPath('make')) done('no make on PATH');
const python = onPath(process.env.PYTHON ?? 'python3', 'python3', 'python');
if (!python) done('no python3 on PATH (node-gyp needs it)');

// The Node headers: npm's configured nodedir (npm and pnpm pass it to scripts as npm_config_nodedir),
// else the prefix this node runs from (/usr for Debian's nodejs, the install dir for official builds).
const nodedir = [process.env.npm_config_nodedir, resolve(dirname(process.execPath), '..')].find((d) => d && existsSync(join(d, 'include', 'node', 'node_api.h')));
if (!nodedir) done(`no Node headers (include/node/node_api.h) under npm's nodedir or ${resolve(dirname(process.execPath), '..')}`);

// node-gyp: the one npm bundles (npm passes its path to scripts as npm_config_node_gyp), else the
// copy inside the npm beside this node, else one on PATH.
const npmGyp = ['lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js', 'node_modules/npm/node_modules/node-gyp/bin/node-gyp.js']
  .map((p) => resolve(dirname(process.execPath), '..', p));
const gypJs = [process.env.npm_config_node_gyp, ...npmGyp].find((p) => p && p.endsWith('.js') && existsSync(p));
const gypBin = gypJs ? null : onPath('node-gyp');
if (!gypJs && !gypBin) done('node-gyp not found (it comes with npm)');

const args = ['rebuild', `--nodedir=${nodedir}`, `--python=${python}`, '--release'];
const result = gypJs
  ? spawnSync(process.execPath, [gypJs, ...args], { cwd: dir, encoding: 'utf8' })
  : spawnSync(gypBin, args, { cwd: dir, encoding: 'utf8' });
const output = `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? String(result.error) : ''}`;
try {
  writeFileSync(log, output);
} catch {
  // A read-only package directory: the reason below is still printed.
}
if (result.status !== 0 || !existsSync(addon)) {
  // The first compiler error is the useful line; else node-gyp's own last error.
  const lines = output.split('\n');
  const why = lines.find((l) => /error:|Error:|not found/.test(l))?.trim() ?? `node-gyp exited with ${result.status}`;
  done(`node-gyp rebuild failed: ${why.slice(0, 240)}`, ` Full output: ${log}`);
}
console.log(`@loom/tensor-core: built the native backend (${addon})`);
done(null);
