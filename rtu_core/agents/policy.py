"""Action distributions for streaming actor-critic: categorical (discrete) and Gaussian (continuous).

Sampling uses the members' own uniform / normal draws, so populations reproduce solo runs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def categorical_log_prob(logits: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
    """(log π(a), H(π)) of π = softmax(logits), differentiable in the logits."""
    return _categorical_terms(torch.log_softmax(logits, dim=-1), action)


def _categorical_terms(log_probs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
    entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
    return log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1), entropy


def categorical_action(logits: Tensor, uniform: Tensor | None) -> Tensor:
    """a ~ softmax(logits) by inverse CDF of u (argmax when u is None), without gradient."""
    if uniform is None:
        return logits.argmax(dim=-1)
    cdf = torch.log_softmax(logits.detach(), dim=-1).exp().cumsum(dim=-1)
    return (cdf < uniform).sum(dim=-1).clamp(max=logits.shape[-1] - 1)


def categorical(logits: Tensor, uniform: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """a ~ softmax(logits) by inverse CDF of u (argmax when u is None); returns (a, log π(a), H(π))."""
    action = categorical_action(logits, uniform)
    return action, *categorical_log_prob(logits, action)


def gaussian_log_prob(mean: Tensor, log_std: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
    """(log π(a), H(π)) of π = N(μ, σ²) per dimension, σ = exp(log σ) state-independent; differentiable in μ and
    log σ."""
    log_prob = (-((action - mean) ** 2) / (2 * log_std.exp() ** 2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1).expand(mean.shape[:-1])
    return log_prob, entropy


def gaussian_action(mean: Tensor, log_std: Tensor, noise: Tensor | None) -> Tensor:
    """a = μ + σ ε (μ when ε is None), σ = exp(log σ) state-independent, without gradient."""
    return mean.detach() if noise is None else (mean + log_std.exp() * noise).detach()


def gaussian(mean: Tensor, log_std: Tensor, noise: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """a = μ + σ ε (μ when ε is None), σ = exp(log σ) state-independent; returns (a, log π(a), H(π))."""
    action = gaussian_action(mean, log_std, noise)
    return action, *gaussian_log_prob(mean, log_std, action)


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
