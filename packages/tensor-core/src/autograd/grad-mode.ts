/**
 * Whether ops record the graph. Off inside `noGrad`, where inference builds no closures and keeps
 * no references to its inputs, as in PyTorch's `torch.no_grad()`.
 */
let enabled = true;

/** True when ops currently record gradients. */
export function isGradEnabled(): boolean {
  return enabled;
}

/**
 * Runs `fn` with gradient recording off and returns its result.
 *
 * @example
 * const logits = noGrad(() => model.forward(x)); // no graph, nothing kept for backward
 */
export function noGrad<T>(fn: () => T): T {
  const previous = enabled;
  enabled = false;
  try {
    return fn();
  } finally {
    enabled = previous;
  }
}
