"""The MLP every reference script builds: Linear layers with ReLU between them, Xavier-uniform
weights and zero biases, as Loom's `mlp(sizes, { init: 'xavier' })`."""
import torch


def mlp(sizes):
    layers = []
    for i in range(len(sizes) - 1):
        if i > 0:
            layers.append(torch.nn.ReLU())
        lin = torch.nn.Linear(sizes[i], sizes[i + 1])
        torch.nn.init.xavier_uniform_(lin.weight)
        torch.nn.init.zeros_(lin.bias)
        layers.append(lin)
    return torch.nn.Sequential(*layers)
