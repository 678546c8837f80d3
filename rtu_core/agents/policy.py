"""Action distributions for streaming actor-critic: categorical (discrete) and Gaussian (continuous).

Sampling uses the members' own uniform / normal draws, so populations reproduce solo runs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def categorical(logits: Tensor, uniform: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """a ~ softmax(logits) by inverse CDF of u (argmax when u is None); returns (a, log π(a), H(π))."""
    log_probs = torch.log_softmax(logits, dim=-1)
    probs = log_probs.exp()
    if uniform is None:
        action = logits.argmax(dim=-1)
    else:
        cdf = probs.detach().cumsum(dim=-1)
        action = (cdf < uniform).sum(dim=-1).clamp(max=logits.shape[-1] - 1)
    entropy = -(probs * log_probs).sum(dim=-1)
    return action, log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1), entropy


def gaussian(mean: Tensor, log_std: Tensor, noise: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """a = μ + σ ε (μ when ε is None), σ = exp(log σ) state-independent; returns (a, log π(a), H(π))."""
    std = log_std.exp()
    action = mean.detach() if noise is None else (mean + std * noise).detach()
    log_prob = (-((action - mean) ** 2) / (2 * std**2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1).expand(mean.shape[:-1])
    return action, log_prob, entropy


def categorical_grad(logits: Tensor, action: Tensor, entropy_coeff: Tensor) -> Tensor:
    """d[log π(a) + c H(π)]/d logits = onehot(a) - π - c π (log π + H), c per member (P,)."""
    log_probs = torch.log_softmax(logits, dim=-1)
    probs = log_probs.exp()
    entropy = -(probs * log_probs).sum(-1, keepdim=True)
    onehot = torch.zeros_like(logits).scatter_(-1, action.unsqueeze(-1), 1.0)
    return onehot - probs - entropy_coeff.unsqueeze(-1) * probs * (log_probs + entropy)


def gaussian_grads(mean: Tensor, log_std: Tensor, action: Tensor, entropy_coeff: Tensor) -> tuple[Tensor, Tensor]:
    """d[log π(a) + c H(π)]/dμ = (a - μ) / σ²  and  d/d log σ = (a - μ)² / σ² - 1 + c, c per member (P,)."""
    z = (action - mean) / log_std.exp()
    return z / log_std.exp(), z.square() - 1 + entropy_coeff.unsqueeze(-1)
