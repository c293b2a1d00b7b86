/*
 * WIDE_CLONES: compile a function once per vector width (AVX-512, AVX2, the SSE2 baseline) and let
 * the loader pick one by CPU (GCC's target_clones, an ifunc), for loops that the baseline build runs
 * four floats at a time. The addon itself is built for baseline x86-64 so that it loads anywhere.
 * Without -ffp-contract (ISO C, binding.gyp) no target fuses a multiply and an add, so every clone
 * gives the same bits.
 */
#ifndef LOOM_WIDE_H
#define LOOM_WIDE_H

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define WIDE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WIDE_CLONES
#endif

#endif
