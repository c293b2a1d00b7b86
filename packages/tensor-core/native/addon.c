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
 *   causalAttention(isa, qkv, out, probs, b, t, h, d), causalAttentionBackward(isa, qkv, probs, dout, dqkv, b, t, h, d)
 *     attention.h's core of causal self-attention, its products on the isa's GEMM
 *   relu(x, out, n), reluBackwardInto(y, dy, dx, n), gelu(x, out, n), geluBackward(x, dy, dx, n)
 *   layerNorm(x, weight|null, bias|null, out, mean, rstd, rows, d, eps)
 *   layerNormBackward(x, weight|null, mean, rstd, dy, dx|null, dweight|null, dbias|null, rows, d)
 *   softmaxCrossEntropy(x, labels, probs, rows, cols) → number
 *   softmaxCrossEntropyBackward(probs, labels, dx, rows, cols, g)
 *     the row kernels of rows.h, with the arguments of their TypeScript twins (unary.ts, softmax.ts)
 *   conv2d(isa, x, w, bias|null, out, n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, o),
 *   conv2dBackward(isa, x, w, dy, dx|null, dw|null, db|null, …the same dims, o)
 *     conv.h's whole convolution, a chunk of images at a time, its products on the isa's GEMM
 *   im2col(x, cols, n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow), col2im(dcols, dx, …the same),
 *   swap01(x, out, a, b, inner, accumulate), addRowSums(x, out, rows, cols),
 *   maxPool2d(x, out, argmax, planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow),
 *   maxPool2dBackward(dy, argmax, dx, planes, h, w, oh, ow)
 *     the plane kernels of planes.h, twins of conv.ts and pool.ts
 * `isa` is an index into `isas`. Sizes are checked against the arrays' lengths (and labels against
 * the classes): a call that would read or write outside them throws a RangeError and touches nothing.
 */
#define _POSIX_C_SOURCE 200112L /* posix_memalign under -std=c11 */
#define NAPI_VERSION 6
#include <node_api.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "attention.h"
#include "conv.h"
#include "gemm.h"
#include "planes.h"
#include "rows.h"

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

/* A typed array of `want` (Float32Array or Int32Array), its data pointer and length in elements. */
static int get_array(napi_env env, const char *op, napi_value v, const char *name, napi_typedarray_type want, void **data, size_t *length) {
  napi_typedarray_type type;
  void *ptr;
  char msg[160];
  if (napi_get_typedarray_info(env, v, &type, length, &ptr, NULL, NULL) != napi_ok || type != want) {
    snprintf(msg, sizeof msg, "%s (native): %s: expected a%s", op, name, want == napi_float32_array ? " Float32Array" : "n Int32Array");
    return fail(env, msg);
  }
  *data = ptr; /* already advanced by the view's byteOffset */
  return 1;
}

static int get_f32(napi_env env, napi_value v, const char *name, float **data, size_t *length) {
  return get_array(env, "matmul", v, name, napi_float32_array, (void **)data, length);
}

static int get_dim(napi_env env, const char *op, napi_value v, const char *name, int64_t *out) {
  char msg[160];
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    snprintf(msg, sizeof msg, "%s (native): %s: expected an integer in [0, 2^31), got a non-number", op, name);
    return fail(env, msg);
  }
  if (!(d >= 0 && d <= 2147483647.0) || d != (double)(int64_t)d) {
    snprintf(msg, sizeof msg, "%s (native): %s: expected an integer in [0, 2^31), got %g", op, name, d);
    return fail(env, msg);
  }
  *out = (int64_t)d;
  return 1;
}

static int get_size(napi_env env, napi_value v, const char *name, int64_t *out) { return get_dim(env, "matmul", v, name, out); }

/* A boolean, or a number (0 or not), as the wasm backend's callers sometimes pass. */
static int get_flag(napi_env env, napi_value v) {
  bool b;
  if (napi_get_value_bool(env, v, &b) == napi_ok) return b;
  double d;
  return napi_get_value_double(env, v, &d) == napi_ok && d != 0;
}

static int check_len_of(napi_env env, const char *op, const char *name, size_t length, int64_t need) {
  char msg[200];
  if ((int64_t)length >= need) return 1;
  snprintf(msg, sizeof msg, "%s (native): %s: expected at least %lld elements for these sizes, got %zu", op, name, (long long)need, length);
  return fail(env, msg);
}

static int check_len(napi_env env, const char *name, size_t length, int64_t need) { return check_len_of(env, "matmul", name, length, need); }

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

/*
 * The row kernels (rows.h). Each checks its arguments before touching anything, as the products do:
 * arrays of the right type and long enough, labels inside [0, C).
 */
#define ARGS(op, count)                                                                \
  size_t argc = count;                                                                 \
  napi_value argv[count];                                                              \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;   \
  if (argc < count) {                                                                  \
    fail(env, op " (native): expected " #count " arguments");                          \
    return NULL;                                                                       \
  }

/*
 * The arguments of an elementwise kernel: `arrays` Float32Arrays named `names`, then n, each array
 * at least n long. Throws and returns 0 otherwise.
 */
static int elementwise_args(napi_env env, napi_callback_info info, const char *op, const char *const *names, int arrays, void **data, int64_t *n) {
  size_t argc = 4;
  napi_value argv[4];
  size_t len[3];
  char msg[160];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc < (size_t)arrays + 1) {
    snprintf(msg, sizeof msg, "%s (native): expected %d arguments", op, arrays + 1);
    return fail(env, msg);
  }
  for (int i = 0; i < arrays; i++)
    if (!get_array(env, op, argv[i], names[i], napi_float32_array, &data[i], &len[i])) return 0;
  if (!get_dim(env, op, argv[arrays], "n", n)) return 0;
  for (int i = 0; i < arrays; i++)
    if (!check_len_of(env, op, names[i], len[i], *n)) return 0;
  return 1;
}

/* relu(x, out, n) and reluBackwardInto(y, dy, dx, n): the float arrays are read as their bits. */
static napi_value relu(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"x", "out"};
  void *a[2];
  int64_t n;
  if (elementwise_args(env, info, "relu", names, 2, a, &n)) loom_relu(a[0], a[1], n);
  return NULL;
}

static napi_value relu_backward(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"y", "dy", "dx"};
  void *a[3];
  int64_t n;
  if (elementwise_args(env, info, "reluBackwardInto", names, 3, a, &n)) loom_relu_backward(a[0], a[1], a[2], n);
  return NULL;
}

/* gelu(x, out, n) and geluBackward(x, dy, dx, n): the exact GELU and its gradient (dx +=). */
static napi_value gelu(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"x", "out"};
  void *a[2];
  int64_t n;
  if (elementwise_args(env, info, "gelu", names, 2, a, &n)) loom_gelu(a[0], a[1], n);
  return NULL;
}

static napi_value gelu_backward(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"x", "dy", "dx"};
  void *a[3];
  int64_t n;
  if (elementwise_args(env, info, "geluBackward", names, 3, a, &n)) loom_gelu_backward(a[0], a[1], a[2], n);
  return NULL;
}

/* The arguments both cross-entropy kernels share: (N, C) floats, N labels in [0, C), rows, cols. */
static int xent_args(napi_env env, const char *op, napi_value *argv, float **a, const char *aname, int32_t **labels, float **b, const char *bname,
                     int64_t *rows, int64_t *cols) {
  size_t alen, llen, blen;
  if (!get_array(env, op, argv[0], aname, napi_float32_array, (void **)a, &alen) || !get_array(env, op, argv[1], "labels", napi_int32_array, (void **)labels, &llen) ||
      !get_array(env, op, argv[2], bname, napi_float32_array, (void **)b, &blen) || !get_dim(env, op, argv[3], "rows", rows) ||
      !get_dim(env, op, argv[4], "cols", cols) || !check_len_of(env, op, aname, alen, *rows * *cols) ||
      !check_len_of(env, op, "labels", llen, *rows) || !check_len_of(env, op, bname, blen, *rows * *cols))
    return 0;
  for (int64_t r = 0; r < *rows; r++) {
    if ((*labels)[r] < 0 || (*labels)[r] >= *cols) {
      char msg[160];
      snprintf(msg, sizeof msg, "%s (native): label %d at position %lld is out of range for %lld classes", op, (*labels)[r], (long long)r, (long long)*cols);
      return fail(env, msg);
    }
  }
  return 1;
}

/* softmaxCrossEntropy(x, labels, probs, rows, cols) → Σ −log softmax(x)[label] */
static napi_value softmax_xent(napi_env env, napi_callback_info info) {
  ARGS("softmaxCrossEntropy", 5)
  float *x, *probs;
  int32_t *labels;
  int64_t rows, cols;
  if (!xent_args(env, "softmaxCrossEntropy", argv, &x, "x", &labels, &probs, "probs", &rows, &cols)) return NULL;
  napi_value total;
  napi_create_double(env, rows == 0 || cols == 0 ? 0 : loom_softmax_xent(x, labels, probs, rows, cols), &total);
  return total;
}

/* softmaxCrossEntropyBackward(probs, labels, dx, rows, cols, g): dx += (probs − onehot)·g */
static napi_value softmax_xent_backward(napi_env env, napi_callback_info info) {
  ARGS("softmaxCrossEntropyBackward", 6)
  float *probs, *dx;
  int32_t *labels;
  int64_t rows, cols;
  double g;
  if (!xent_args(env, "softmaxCrossEntropyBackward", argv, &probs, "probs", &labels, &dx, "dx", &rows, &cols)) return NULL;
  if (napi_get_value_double(env, argv[5], &g) != napi_ok) {
    fail(env, "softmaxCrossEntropyBackward (native): g: expected a number");
    return NULL;
  }
  loom_softmax_xent_backward(probs, labels, dx, rows, cols, (float)g);
  return NULL;
}

/*
 * The plane kernels (planes.h). Their dimensions come after the arrays as numbers, in the order of
 * conv.ts's Conv2dShape and pool.ts's Pool2dShape; every index they touch is checked against the
 * arrays' lengths first (the loops themselves read only inside the planes they are given).
 */
static int get_dims(napi_env env, const char *op, napi_value *argv, const char *const *names, int count, long *out) {
  for (int i = 0; i < count; i++) {
    int64_t d;
    if (!get_dim(env, op, argv[i], names[i], &d)) return 0;
    out[i] = (long)d;
  }
  return 1;
}

static int positive(napi_env env, const char *op, const char *name, long v) {
  char msg[160];
  if (v >= 1) return 1;
  snprintf(msg, sizeof msg, "%s (native): %s: expected at least 1, got %ld", op, name, v);
  return fail(env, msg);
}

static const char *const CONV_DIMS[] = {"n", "c", "h", "w", "kh", "kw", "sh", "sw", "ph", "pw", "oh", "ow"};

/* im2col(x, cols, ...dims) and col2im(dcols, dx, ...dims): `image` is x or dx, `columns` cols or dcols. */
static napi_value columns_op(napi_env env, napi_callback_info info, const char *op, int to_columns) {
  ARGS("im2col/col2im", 14)
  float *first, *second;
  size_t flen, slen;
  long d[12];
  const char *fname = to_columns ? "x" : "dcols", *sname = to_columns ? "cols" : "dx";
  if (!get_array(env, op, argv[0], fname, napi_float32_array, (void **)&first, &flen) ||
      !get_array(env, op, argv[1], sname, napi_float32_array, (void **)&second, &slen) || !get_dims(env, op, argv + 2, CONV_DIMS, 12, d) ||
      !positive(env, op, "sh", d[6]) || !positive(env, op, "sw", d[7]))
    return NULL;
  loom_conv_shape s = {d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11]};
  int64_t image = (int64_t)s.n * s.c * s.h * s.w, columns = (int64_t)s.c * s.kh * s.kw * s.n * s.oh * s.ow;
  if (!check_len_of(env, op, fname, flen, to_columns ? image : columns) || !check_len_of(env, op, sname, slen, to_columns ? columns : image)) return NULL;
  if (to_columns) loom_im2col(first, second, &s);
  else loom_col2im(first, second, &s);
  return NULL;
}

static napi_value im2col(napi_env env, napi_callback_info info) { return columns_op(env, info, "im2col", 1); }
static napi_value col2im(napi_env env, napi_callback_info info) { return columns_op(env, info, "col2im", 0); }

/* swap01(x, out, a, b, inner, accumulate) */
static napi_value swap01(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"a", "b", "inner"};
  ARGS("swap01", 6)
  float *x, *out;
  size_t xlen, olen;
  long d[3];
  if (!get_array(env, "swap01", argv[0], "x", napi_float32_array, (void **)&x, &xlen) ||
      !get_array(env, "swap01", argv[1], "out", napi_float32_array, (void **)&out, &olen) || !get_dims(env, "swap01", argv + 2, names, 3, d) ||
      !check_len_of(env, "swap01", "x", xlen, (int64_t)d[0] * d[1] * d[2]) || !check_len_of(env, "swap01", "out", olen, (int64_t)d[0] * d[1] * d[2]))
    return NULL;
  loom_swap01(x, out, d[0], d[1], d[2], get_flag(env, argv[5]));
  return NULL;
}

/* addRowSums(x, out, rows, cols) */
static napi_value add_row_sums(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"rows", "cols"};
  const char *op = "addRowSums";
  ARGS("addRowSums", 4)
  float *x, *out;
  size_t xlen, olen;
  long d[2];
  if (!get_array(env, op, argv[0], "x", napi_float32_array, (void **)&x, &xlen) || !get_array(env, op, argv[1], "out", napi_float32_array, (void **)&out, &olen) ||
      !get_dims(env, op, argv + 2, names, 2, d) || !check_len_of(env, op, "x", xlen, (int64_t)d[0] * d[1]) || !check_len_of(env, op, "out", olen, d[0]))
    return NULL;
  loom_add_row_sums(x, out, d[0], d[1]);
  return NULL;
}

static const char *const POOL_DIMS[] = {"planes", "h", "w", "kh", "kw", "sh", "sw", "ph", "pw", "oh", "ow"};

/* maxPool2d(x, out, argmax, ...dims) */
static napi_value max_pool2d(napi_env env, napi_callback_info info) {
  const char *op = "maxPool2d";
  ARGS("maxPool2d", 14)
  float *x, *out;
  int32_t *argmax;
  size_t xlen, olen, alen;
  long d[11];
  if (!get_array(env, op, argv[0], "x", napi_float32_array, (void **)&x, &xlen) || !get_array(env, op, argv[1], "out", napi_float32_array, (void **)&out, &olen) ||
      !get_array(env, op, argv[2], "argmax", napi_int32_array, (void **)&argmax, &alen) || !get_dims(env, op, argv + 3, POOL_DIMS, 11, d))
    return NULL;
  loom_pool_shape s = {d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10]};
  int64_t outputs = (int64_t)s.planes * s.oh * s.ow;
  if (!check_len_of(env, op, "x", xlen, (int64_t)s.planes * s.h * s.w) || !check_len_of(env, op, "out", olen, outputs) ||
      !check_len_of(env, op, "argmax", alen, outputs))
    return NULL;
  loom_max_pool2d(x, out, argmax, &s);
  return NULL;
}

/* maxPool2dBackward(dy, argmax, dx, planes, h, w, oh, ow): every argmax is checked to lie in its plane. */
static napi_value max_pool2d_backward(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"planes", "h", "w", "oh", "ow"};
  const char *op = "maxPool2dBackward";
  ARGS("maxPool2dBackward", 8)
  float *dy, *dx;
  int32_t *argmax;
  size_t dylen, alen, dxlen;
  long d[5];
  if (!get_array(env, op, argv[0], "dy", napi_float32_array, (void **)&dy, &dylen) ||
      !get_array(env, op, argv[1], "argmax", napi_int32_array, (void **)&argmax, &alen) ||
      !get_array(env, op, argv[2], "dx", napi_float32_array, (void **)&dx, &dxlen) || !get_dims(env, op, argv + 3, names, 5, d))
    return NULL;
  int64_t outputs = (int64_t)d[0] * d[3] * d[4], hw = (int64_t)d[1] * d[2];
  if (!check_len_of(env, op, "dy", dylen, outputs) || !check_len_of(env, op, "argmax", alen, outputs) || !check_len_of(env, op, "dx", dxlen, d[0] * hw))
    return NULL;
  for (int64_t q = 0; q < outputs; q++) {
    if (argmax[q] < 0 || argmax[q] >= hw) {
      char msg[200];
      snprintf(msg, sizeof msg, "%s (native): argmax %d at position %lld lies outside its %ld×%ld plane", op, argmax[q], (long long)q, d[1], d[2]);
      fail(env, msg);
      return NULL;
    }
  }
  loom_pool_shape s = {d[0], d[1], d[2], 0, 0, 1, 1, 0, 0, d[3], d[4]};
  loom_max_pool2d_backward(dy, argmax, dx, &s);
  return NULL;
}

/*
 * causalAttention(isa, qkv, out, probs, b, t, h, d) and
 * causalAttentionBackward(isa, qkv, probs, dout, dqkv, b, t, h, d): attention.h's core.
 */
static napi_value attention_op(napi_env env, napi_callback_info info, int backward) {
  static const char *const names[] = {"b", "t", "h", "d"};
  const char *op = backward ? "causalAttentionBackward" : "causalAttention";
  size_t argc = 8 + backward;
  napi_value argv[10];
  instance *self;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&self) != napi_ok) return NULL;
  if (argc < (size_t)(8 + backward)) {
    fail(env, backward ? "causalAttentionBackward (native): expected 9 arguments" : "causalAttention (native): expected 8 arguments");
    return NULL;
  }
  int64_t isa;
  if (!get_dim(env, op, argv[0], "isa", &isa)) return NULL;
  if (isa >= self->isa_count) {
    fail(env, "causalAttention (native): isa: expected an index into isas");
    return NULL;
  }
  const int arrays = 3 + backward;
  static const char *const forward_names[] = {"qkv", "out", "probs"}, *const backward_names[] = {"qkv", "probs", "dout", "dqkv"};
  const char *const *array_names = backward ? backward_names : forward_names;
  float *a[4];
  size_t len[4];
  for (int i = 0; i < arrays; i++)
    if (!get_array(env, op, argv[1 + i], array_names[i], napi_float32_array, (void **)&a[i], &len[i])) return NULL;
  long dim[4];
  if (!get_dims(env, op, argv + 1 + arrays, names, 4, dim)) return NULL;
  const long b = dim[0], t = dim[1], h = dim[2], d = dim[3];
  const int64_t qkv = (int64_t)b * t * 3 * h * d, rows = (int64_t)b * t * h * d, probs = (int64_t)b * h * t * t;
  const int64_t need[2][4] = {{qkv, rows, probs, 0}, {qkv, probs, rows, qkv}};
  for (int i = 0; i < arrays; i++)
    if (!check_len_of(env, op, array_names[i], len[i], need[backward][i])) return NULL;
  if (b == 0 || t == 0 || h == 0 || d == 0) return NULL;
  const loom_isa *chosen = self->isas[isa];
  float *work = workspace(env, self, loom_attention_workspace_floats(chosen, t, d));
  if (work == NULL) return NULL;
  if (backward) loom_causal_attention_backward(chosen, work, a[0], a[1], a[2], a[3], b, t, h, d);
  else loom_causal_attention(chosen, work, a[0], a[1], a[2], b, t, h, d);
  return NULL;
}

static napi_value causal_attention(napi_env env, napi_callback_info info) { return attention_op(env, info, 0); }
static napi_value causal_attention_backward(napi_env env, napi_callback_info info) { return attention_op(env, info, 1); }

/* A Float32Array or null (NULL, length 0): layer norm's optional weight, bias and gradients. */
static int get_optional(napi_env env, const char *op, napi_value v, const char *name, float **data, size_t *length) {
  napi_valuetype type;
  if (napi_typeof(env, v, &type) == napi_ok && (type == napi_null || type == napi_undefined)) {
    *data = NULL;
    *length = 0;
    return 1;
  }
  return get_array(env, op, v, name, napi_float32_array, (void **)data, length);
}

/* Checks an optional array's length: a missing one (NULL) needs none. */
static int check_optional(napi_env env, const char *op, const char *name, const float *data, size_t length, int64_t need) {
  return data == NULL || check_len_of(env, op, name, length, need);
}

/* layerNorm(x, weight|null, bias|null, out, mean, rstd, rows, d, eps) */
static napi_value layer_norm(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"rows", "d"};
  const char *op = "layerNorm";
  ARGS("layerNorm", 9)
  float *x, *w, *b, *out, *mean, *rstd;
  size_t xl, wl, bl, ol, ml, rl;
  long dim[2];
  double eps;
  if (!get_array(env, op, argv[0], "x", napi_float32_array, (void **)&x, &xl) || !get_optional(env, op, argv[1], "weight", &w, &wl) ||
      !get_optional(env, op, argv[2], "bias", &b, &bl) || !get_array(env, op, argv[3], "out", napi_float32_array, (void **)&out, &ol) ||
      !get_array(env, op, argv[4], "mean", napi_float32_array, (void **)&mean, &ml) ||
      !get_array(env, op, argv[5], "rstd", napi_float32_array, (void **)&rstd, &rl) || !get_dims(env, op, argv + 6, names, 2, dim))
    return NULL;
  if (napi_get_value_double(env, argv[8], &eps) != napi_ok || !(eps >= 0)) {
    fail(env, "layerNorm (native): eps: expected a non-negative number");
    return NULL;
  }
  const int64_t n = (int64_t)dim[0] * dim[1];
  if (!check_len_of(env, op, "x", xl, n) || !check_optional(env, op, "weight", w, wl, dim[1]) || !check_optional(env, op, "bias", b, bl, dim[1]) ||
      !check_len_of(env, op, "out", ol, n) || !check_len_of(env, op, "mean", ml, dim[0]) || !check_len_of(env, op, "rstd", rl, dim[0]))
    return NULL;
  if (dim[1] > 0) loom_layer_norm(x, w, b, out, mean, rstd, dim[0], dim[1], eps);
  return NULL;
}

/* layerNormBackward(x, weight|null, mean, rstd, dy, dx|null, dweight|null, dbias|null, rows, d) */
static napi_value layer_norm_backward(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"rows", "d"};
  const char *op = "layerNormBackward";
  ARGS("layerNormBackward", 10)
  float *x, *w, *mean, *rstd, *dy, *dx, *dw, *db;
  size_t xl, wl, ml, rl, yl, dxl, dwl, dbl;
  long dim[2];
  if (!get_array(env, op, argv[0], "x", napi_float32_array, (void **)&x, &xl) || !get_optional(env, op, argv[1], "weight", &w, &wl) ||
      !get_array(env, op, argv[2], "mean", napi_float32_array, (void **)&mean, &ml) ||
      !get_array(env, op, argv[3], "rstd", napi_float32_array, (void **)&rstd, &rl) ||
      !get_array(env, op, argv[4], "dy", napi_float32_array, (void **)&dy, &yl) || !get_optional(env, op, argv[5], "dx", &dx, &dxl) ||
      !get_optional(env, op, argv[6], "dweight", &dw, &dwl) || !get_optional(env, op, argv[7], "dbias", &db, &dbl) ||
      !get_dims(env, op, argv + 8, names, 2, dim))
    return NULL;
  const int64_t n = (int64_t)dim[0] * dim[1];
  if (!check_len_of(env, op, "x", xl, n) || !check_optional(env, op, "weight", w, wl, dim[1]) || !check_len_of(env, op, "mean", ml, dim[0]) ||
      !check_len_of(env, op, "rstd", rl, dim[0]) || !check_len_of(env, op, "dy", yl, n) || !check_optional(env, op, "dx", dx, dxl, n) ||
      !check_optional(env, op, "dweight", dw, dwl, dim[1]) || !check_optional(env, op, "dbias", db, dbl, dim[1]))
    return NULL;
  if (dim[1] > 0) loom_layer_norm_backward(x, w, mean, rstd, dy, dx, dw, db, dim[0], dim[1]);
  return NULL;
}

/*
 * conv2d(isa, x, w, bias|null, out, ...dims, o) and
 * conv2dBackward(isa, x, w, dy, dx|null, dw|null, db|null, ...dims, o): conv.h's whole convolution.
 * `dims` are im2col's twelve (n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow).
 */
static napi_value conv_op(napi_env env, napi_callback_info info, int backward) {
  const char *op = backward ? "conv2dBackward" : "conv2d";
  const int arrays = backward ? 6 : 4, count = 1 + arrays + 13;
  size_t argc = 20;
  napi_value argv[20];
  instance *self;
  char msg[160];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&self) != napi_ok) return NULL;
  if (argc < (size_t)count) {
    snprintf(msg, sizeof msg, "%s (native): expected %d arguments", op, count);
    fail(env, msg);
    return NULL;
  }
  int64_t isa;
  if (!get_dim(env, op, argv[0], "isa", &isa)) return NULL;
  if (isa >= self->isa_count) {
    snprintf(msg, sizeof msg, "%s (native): isa: expected an index into isas", op);
    fail(env, msg);
    return NULL;
  }
  static const char *const forward_names[] = {"x", "w", "bias", "out"}, *const backward_names[] = {"x", "w", "dy", "dx", "dw", "db"};
  static const int forward_optional[] = {0, 0, 1, 0}, backward_optional[] = {0, 0, 0, 1, 1, 1};
  const char *const *names = backward ? backward_names : forward_names;
  const int *optional = backward ? backward_optional : forward_optional;
  float *a[6];
  size_t len[6];
  for (int i = 0; i < arrays; i++) {
    int ok = optional[i] ? get_optional(env, op, argv[1 + i], names[i], &a[i], &len[i])
                         : get_array(env, op, argv[1 + i], names[i], napi_float32_array, (void **)&a[i], &len[i]);
    if (!ok) return NULL;
  }
  long d[12];
  int64_t o;
  if (!get_dims(env, op, argv + 1 + arrays, CONV_DIMS, 12, d) || !get_dim(env, op, argv[13 + arrays], "o", &o) || !positive(env, op, "sh", d[6]) ||
      !positive(env, op, "sw", d[7]))
    return NULL;
  loom_conv_shape s = {d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11]};
  const int64_t image = (int64_t)s.n * s.c * s.h * s.w, weight = o * s.c * s.kh * s.kw, output = (int64_t)s.n * o * s.oh * s.ow;
  const int64_t need[2][6] = {{image, weight, o, output, 0, 0}, {image, weight, output, image, weight, o}};
  for (int i = 0; i < arrays; i++)
    if (a[i] != NULL && !check_len_of(env, op, names[i], len[i], need[backward][i])) return NULL;
  if (s.n == 0 || o == 0 || s.oh == 0 || s.ow == 0) return NULL;
  const loom_isa *chosen = self->isas[isa];
  float *work = workspace(env, self, loom_conv_workspace_floats(chosen, &s, o));
  if (work == NULL) return NULL;
  if (backward) loom_conv2d_backward(chosen, work, a[0], a[1], a[2], a[3], a[4], a[5], &s, o);
  else loom_conv2d(chosen, work, a[0], a[1], a[2], a[3], &s, o);
  return NULL;
}

static napi_value conv2d(napi_env env, napi_callback_info info) { return conv_op(env, info, 0); }
static napi_value conv2d_backward(napi_env env, napi_callback_info info) { return conv_op(env, info, 1); }

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
  napi_create_function(env, "causalAttention", NAPI_AUTO_LENGTH, causal_attention, self, &fn);
  napi_set_named_property(env, exports, "causalAttention", fn);
  napi_create_function(env, "causalAttentionBackward", NAPI_AUTO_LENGTH, causal_attention_backward, self, &fn);
  napi_set_named_property(env, exports, "causalAttentionBackward", fn);
  napi_create_function(env, "relu", NAPI_AUTO_LENGTH, relu, NULL, &fn);
  napi_set_named_property(env, exports, "relu", fn);
  napi_create_function(env, "reluBackwardInto", NAPI_AUTO_LENGTH, relu_backward, NULL, &fn);
  napi_set_named_property(env, exports, "reluBackwardInto", fn);
  napi_create_function(env, "gelu", NAPI_AUTO_LENGTH, gelu, NULL, &fn);
  napi_set_named_property(env, exports, "gelu", fn);
  napi_create_function(env, "geluBackward", NAPI_AUTO_LENGTH, gelu_backward, NULL, &fn);
  napi_set_named_property(env, exports, "geluBackward", fn);
  napi_create_function(env, "conv2d", NAPI_AUTO_LENGTH, conv2d, self, &fn);
  napi_set_named_property(env, exports, "conv2d", fn);
  napi_create_function(env, "conv2dBackward", NAPI_AUTO_LENGTH, conv2d_backward, self, &fn);
  napi_set_named_property(env, exports, "conv2dBackward", fn);
  napi_create_function(env, "im2col", NAPI_AUTO_LENGTH, im2col, NULL, &fn);
  napi_set_named_property(env, exports, "im2col", fn);
  napi_create_function(env, "col2im", NAPI_AUTO_LENGTH, col2im, NULL, &fn);
  napi_set_named_property(env, exports, "col2im", fn);
  napi_create_function(env, "swap01", NAPI_AUTO_LENGTH, swap01, NULL, &fn);
  napi_set_named_property(env, exports, "swap01", fn);
  napi_create_function(env, "addRowSums", NAPI_AUTO_LENGTH, add_row_sums, NULL, &fn);
  napi_set_named_property(env, exports, "addRowSums", fn);
  napi_create_function(env, "maxPool2d", NAPI_AUTO_LENGTH, max_pool2d, NULL, &fn);
  napi_set_named_property(env, exports, "maxPool2d", fn);
  napi_create_function(env, "maxPool2dBackward", NAPI_AUTO_LENGTH, max_pool2d_backward, NULL, &fn);
  napi_set_named_property(env, exports, "maxPool2dBackward", fn);
  napi_create_function(env, "layerNorm", NAPI_AUTO_LENGTH, layer_norm, NULL, &fn);
  napi_set_named_property(env, exports, "layerNorm", fn);
  napi_create_function(env, "layerNormBackward", NAPI_AUTO_LENGTH, layer_norm_backward, NULL, &fn);
  napi_set_named_property(env, exports, "layerNormBackward", fn);
  napi_create_function(env, "softmaxCrossEntropy", NAPI_AUTO_LENGTH, softmax_xent, NULL, &fn);
  napi_set_named_property(env, exports, "softmaxCrossEntropy", fn);
  napi_create_function(env, "softmaxCrossEntropyBackward", NAPI_AUTO_LENGTH, softmax_xent_backward, NULL, &fn);
  napi_set_named_property(env, exports, "softmaxCrossEntropyBackward", fn);
  napi_create_array_with_length(env, self->isa_count, &names);
  for (int i = 0; i < self->isa_count; i++) {
    napi_value name;
    napi_create_string_utf8(env, self->isas[i]->name, NAPI_AUTO_LENGTH, &name);
    napi_set_element(env, names, i, name);
  }
  napi_set_named_property(env, exports, "isas", names);
  return exports;
}
