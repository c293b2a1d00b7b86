/**
 * @loom/tensor-core — tensors, allocation-free kernels, reverse-mode autograd, layers and
 * safetensors, over flat Float32Array parameters.
 *
 * Tiers import only downward: kernels (loops over typed arrays) → autograd (Tensor, the tape, ops
 * with their gradient rules) → nn (modules, losses, init, flat parameters) → io (safetensors).
 */
export { Tensor, IntTensor, numel, type Shape } from './autograd/tensor.js';
export { noGrad, isGradEnabled } from './autograd/grad-mode.js';
export { BufferPool, reusingBuffers } from './autograd/buffers.js';
export {
  add, sub, mul, div, neg, relu, sigmoid, tanh, exp, log, reshape, cat, sum, mean, softmax, logSoftmax,
  matmul, linear, linearRelu, embedding, embeddingBag, dropout, type EmbeddingOptions, type EmbeddingBagMode,
} from './autograd/ops.js';
export { RowSparseGrad } from './autograd/sparse-grad.js';
export { conv2d, maxPool2d, avgPool2d, type Pair, type Conv2dOptions, type Pool2dOptions } from './autograd/conv.js';
export { layerNorm, batchNorm, gelu, type BatchNormOptions } from './autograd/norm.js';
export { transpose, split, flatten, maskedFill, causalMask } from './autograd/layout.js';
export { bmm } from './autograd/bmm.js';
export { UniqueIds, uniqueIds, type Unique } from './kernels/unique.js';
export { coalesceRows, sortPairsByKey } from './kernels/coalesce.js';
export { crossEntropy, mseLoss, bceWithLogits, type Reduction } from './autograd/losses.js';
export { Module } from './nn/module.js';
export {
  Linear, Embedding, EmbeddingBag, ReLU, Sigmoid, Tanh, Dropout, Sequential, type LinearOptions, type EmbeddingLayerOptions,
} from './nn/layers.js';
export { Conv2d, MaxPool2d, AvgPool2d, Flatten, type Conv2dLayerOptions } from './nn/conv.js';
export { LayerNorm, BatchNorm2d, type LayerNormOptions, type BatchNormLayerOptions } from './nn/norm.js';
export { GELU, CausalSelfAttention, MLP, TransformerBlock, type AttentionOptions } from './nn/transformer.js';
export { causalAttention, composedAttention } from './autograd/attention.js';
export { mlp, type MlpOptions } from './nn/mlp.js';
export * as init from './nn/init.js';
export { manualSeed } from './nn/init.js';
export { flattenParameters, parameterLayout, layoutSize, type FlatParameters, type LayoutEntry, type FlattenOptions } from './nn/flat.js';
export { encodeSafetensors, decodeSafetensors, saveSafetensors, loadSafetensors, type Safetensors } from './io/safetensors.js';
export { saveModel, loadModel } from './io/model.js';
export { Random } from './random.js';
export { backend as kernelBackend, useSharedMemory } from './kernels/select.js';
export type { SharedMemoryHandle } from './kernels/wasm-backend.js';
export type { KernelBackend } from './kernels/backend.js';
