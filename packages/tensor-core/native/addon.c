/*
 * The N-API face of the GEMM: Loom's KernelBackend.matmul over Float32Arrays, read and written in
 * place through the typed arrays' data pointers (no copies), whether they view an ArrayBuffer, a
 * SharedArrayBuffer or a shared WebAssembly memory.
 *
 * Context-aware (NAPI_MODULE_INIT): every Node environment that loads the addon — the main thread
 * and each worker thread — gets its own instance, holding its own packing workspace, which grows to
 * the largest product seen and is freed with the environment. Nothing is shared between threads
 * but read-only tables (the micro-kernels and their blocking).
 *
 * Exports (src/kernels/native-backend.ts wraps them):
 *   isas: string[]   the code paths this CPU runs, best first ('avx512', 'avx2', 'sse')
 *   matmul(isa, a, b, out, m, k, n, transA, transB, accumulate)
 *   matmulBatched(isa, a, b, out, batch, m, k, n, transA, transB, accumulate, strideA, strideB, strideOut)
 *     `batch` independent products, the i-th on a[i·strideA:], b[i·strideB:], out[i·strideOut:]
 *     (attention heads, one image's im2col columns); a stride of 0 reuses one operand.
 * `isa` is an index into `isas`. Sizes are checked against the arrays' lengths: a product that would
 * read or write outside them throws a RangeError and touches nothing.
 */
#define _POSIX_C_SOURCE 200112L /* posix_memalign under -std=c11 */
#define NAPI_VERSION 6
#include <node_api.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "gemm.h"

typedef struct {
  const loom_isa *const *isas;
  int isa_count;
  float *work; /* 64-byte aligned; `cap` floats */
  size_t cap;
} instance;

static void free_instance(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  instance *self = data;
  free(self->work);
  free(self);
}

/* Throws and returns 0 on failure; every helper below does the same. */
static int fail(napi_env env, const char *msg) {
  napi_throw_range_error(env, "ERR_LOOM_NATIVE", msg);
  return 0;
}

static int get_f32(napi_env env, napi_value v, const char *name, float **data, size_t *length) {
  napi_typedarray_type type;
  void *ptr;
  char msg[160];
  if (napi_get_typedarray_info(env, v, &type, length, &ptr, NULL, NULL) != napi_ok || type != napi_float32_array) {
    snprintf(msg, sizeof msg, "matmul (native): %s: expected a Float32Array", name);
    return fail(env, msg);
  }
  *data = ptr; /* already advanced by the view's byteOffset */
  return 1;
}

static int get_size(napi_env env, napi_value v, const char *name, int64_t *out) {
  char msg[160];
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    snprintf(msg, sizeof msg, "matmul (native): %s: expected an integer in [0, 2^31), got a non-number", name);
    return fail(env, msg);
  }
  if (!(d >= 0 && d <= 2147483647.0) || d != (double)(int64_t)d) {
    snprintf(msg, sizeof msg, "matmul (native): %s: expected an integer in [0, 2^31), got %g", name, d);
    return fail(env, msg);
  }
  *out = (int64_t)d;
  return 1;
}

/* A boolean, or a number (0 or not), as the wasm backend's callers sometimes pass. */
static int get_flag(napi_env env, napi_value v) {
  bool b;
  if (napi_get_value_bool(env, v, &b) == napi_ok) return b;
  double d;
  return napi_get_value_double(env, v, &d) == napi_ok && d != 0;
}

static int check_len(napi_env env, const char *name, size_t length, int64_t need) {
  char msg[200];
  if ((int64_t)length >= need) return 1;
  snprintf(msg, sizeof msg, "matmul (native): %s: expected at least %lld elements for these sizes, got %zu", name, (long long)need, length);
  return fail(env, msg);
}

static float *workspace(napi_env env, instance *self, size_t floats) {
  if (floats <= self->cap) return self->work;
  void *p = NULL;
  if (posix_memalign(&p, 64, floats * sizeof(float)) != 0) {
    fail(env, "matmul (native): could not allocate the packing workspace");
    return NULL;
  }
  free(self->work);
  self->work = p;
  self->cap = floats;
  return p;
}

/* The shared body of matmul and matmulBatched: argv holds isa, a, b, out, then `batch` if batched. */
static napi_value run(napi_env env, napi_callback_info info, int batched) {
  size_t argc = 14;
  napi_value argv[14];
  instance *self;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&self) != napi_ok) return NULL;
  size_t want = batched ? 14 : 10;
  if (argc < want) {
    fail(env, batched ? "matmulBatched (native): expected 14 arguments" : "matmul (native): expected 10 arguments");
    return NULL;
  }
  int64_t isa, batch = 1, m, k, n, sa = 0, sb = 0, so = 0;
  float *a, *b, *out;
  size_t alen, blen, olen;
  int s = batched ? 1 : 0; /* argv shift after `out` */
  if (!get_size(env, argv[0], "isa", &isa)) return NULL;
  if (isa >= self->isa_count) {
    fail(env, "matmul (native): isa: expected an index into isas");
    return NULL;
  }
  if (!get_f32(env, argv[1], "a", &a, &alen) || !get_f32(env, argv[2], "b", &b, &blen) || !get_f32(env, argv[3], "out", &out, &olen)) return NULL;
  if (batched && !get_size(env, argv[4], "batch", &batch)) return NULL;
  if (!get_size(env, argv[4 + s], "m", &m) || !get_size(env, argv[5 + s], "k", &k) || !get_size(env, argv[6 + s], "n", &n)) return NULL;
  int transA = get_flag(env, argv[7 + s]), transB = get_flag(env, argv[8 + s]), accumulate = get_flag(env, argv[9 + s]);
  if (batched && (!get_size(env, argv[11], "strideA", &sa) || !get_size(env, argv[12], "strideB", &sb) || !get_size(env, argv[13], "strideOut", &so))) return NULL;
  if (batch == 0 || m == 0 || n == 0) return NULL;
  /* The last product's extent bounds every other's (strides are non-negative). */
  if (!check_len(env, "a", alen, (batch - 1) * sa + m * k) || !check_len(env, "b", blen, (batch - 1) * sb + k * n) ||
      !check_len(env, "out", olen, (batch - 1) * so + m * n))
    return NULL;
  const loom_isa *chosen = self->isas[isa];
  float *work = workspace(env, self, loom_workspace_floats(chosen, m, n, k));
  if (work == NULL) return NULL;
  for (int64_t i = 0; i < batch; i++)
    loom_sgemm(chosen, work, transA, transB, m, n, k, a + i * sa, transA ? m : k, b + i * sb, transB ? k : n, out + i * so, n, accumulate);
  return NULL;
}

static napi_value matmul(napi_env env, napi_callback_info info) { return run(env, info, 0); }
static napi_value matmul_batched(napi_env env, napi_callback_info info) { return run(env, info, 1); }

NAPI_MODULE_INIT() {
  instance *self = calloc(1, sizeof *self);
  if (self == NULL) return NULL;
  self->isas = loom_isas(&self->isa_count);
  if (napi_set_instance_data(env, self, free_instance, NULL) != napi_ok) {
    free(self);
    return NULL;
  }
  napi_value fn, names;
  napi_create_function(env, "matmul", NAPI_AUTO_LENGTH, matmul, self, &fn);
  napi_set_named_property(env, exports, "matmul", fn);
  napi_create_function(env, "matmulBatched", NAPI_AUTO_LENGTH, matmul_batched, self, &fn);
  napi_set_named_property(env, exports, "matmulBatched", fn);
  napi_create_array_with_length(env, self->isa_count, &names);
  for (int i = 0; i < self->isa_count; i++) {
    napi_value name;
    napi_create_string_utf8(env, self->isas[i]->name, NAPI_AUTO_LENGTH, &name);
    napi_set_element(env, names, i, name);
  }
  napi_set_named_property(env, exports, "isas", names);
  return exports;
}
