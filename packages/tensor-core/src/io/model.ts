/** Saving and loading a model's parameters by name, in safetensors. */
import type { Module } from '../nn/module.js';
import { loadSafetensors, saveSafetensors } from './safetensors.js';

/**
 * Writes a model's parameters to `path` (atomically), named as PyTorch names them, so that
 * `model.load_state_dict(safetensors.torch.load_file(path))` loads them into the same architecture.
 */
export function saveModel(path: string, model: Module<any>, metadata: Record<string, string> = {}): void {
  saveSafetensors(path, model.stateDict(), metadata);
}

/**
 * Loads parameters from a safetensors file into `model`; every name and shape must match, and the
 * error names the file and the entries that do not. Returns the file's metadata.
 */
export function loadModel(path: string, model: Module<any>): Record<string, string> {
  const { tensors, metadata } = loadSafetensors(path);
  model.loadStateDict(tensors, path);
  return metadata;
}
