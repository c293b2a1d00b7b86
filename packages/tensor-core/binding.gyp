# The optional native kernel backend (native/), built by scripts/build-native.js with the node-gyp
# that npm bundles, against the Node headers npm is configured with (nothing is downloaded).
# Compiled for baseline x86-64: the AVX2 and AVX-512 micro-kernels carry target attributes and are
# chosen at run time (native/kernels.c), so the binary runs on any x86-64. -fno-trapping-math lets
# the compiler turn the comparisons in native/rows.c's loops into vector selects (Loom never reads
# the floating-point exception flags). -ffp-contract=off keeps the compiler from fusing a multiply
# and an add where the source has two operations (clang does by default), so native/rows.c's
# per-target clones give the same bits on every CPU.
{
  "targets": [
    {
      "target_name": "loom_native",
      "sources": ["native/addon.c", "native/attention.c", "native/conv.c", "native/gemm.c", "native/kernels.c", "native/planes.c", "native/rows.c"],
      "cflags": ["-std=c11", "-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags!": ["-O2", "-O0"],
      "xcode_settings": { "OTHER_CFLAGS": ["-std=c11", "-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"] }
    }
  ]
}
