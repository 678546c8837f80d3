"""Population-aware building blocks: every parameter carries an optional leading population axis.

A module built with ``population=None`` has the ordinary shapes (``weight`` is ``(out, in)``) and
acts on inputs shaped ``(in,)``. Built with ``population=P`` its parameters are stacked ``(P, out, in)``
and it acts on ``(P, in)``: P independent networks evaluated in lockstep. Member i is initialised
from its own ``torch.Generator``, so member i of a population equals the same seed built alone.

The feature blocks' formulas live here once, forward and backward (the native step's C++ keeps its own copy, its
constants tested equal to these):

    n = (a − mean a) / σ,  σ = sqrt(var a + ε)              LayerNorm without affine parameters (ε = LAYER_NORM_EPS)
    da = (dn − mean dn − n · mean(dn ⊙ n)) / σ              its backward
    x = f(n),  dn = dx ⊙ f′(n)                              the activations and their derivatives
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

Generators = torch.Generator | Sequence[torch.Generator | None] | None


def population_shape(population: int | None) -> tuple[int, ...]:
    """() for a single network, (P,) for a population of P."""
    return () if population is None else (population,)


def member_generators(population: int | None, generators: Generators) -> list[torch.Generator | None]:
    """One generator (or None: torch's global RNG) per population member."""
    count = 1 if population is None else population
    if generators is None:
        return [None] * count
    if isinstance(generators, torch.Generator):
        generators = [generators]
    generators = list(generators)
    if len(generators) != count:
        raise ValueError(f"need {count} generators for the population, got {len(generators)}")
    return generators


def member_views(tensor: Tensor, population: int | None) -> list[Tensor]:
    """Views of each member's slice of a stacked tensor (the tensor itself when unstacked)."""
    return [tensor] if population is None else list(tensor.unbind(0))


def matvec(weight: Tensor, x: Tensor) -> Tensor:
    """Per-member matrix-vector product: (..., out, in) @ (..., in) -> (..., out)."""
    return torch.matmul(weight, x.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def sparse_init_(weight: Tensor, sparsity: float, generator: torch.Generator | None) -> None:
    """Sparse initialisation (Elsayed et al. 2024, stream-x): LeCun-uniform U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    then in every output row ceil(sparsity * fan_in) randomly chosen input weights are set to zero -- but at
    most fan_in - 1 of them. (The reference rounding zeroes a whole row when fan_in is tiny, e.g. all of
    MemoryChain's 3 inputs at sparsity 0.9, leaving every unit disconnected from the observation.)"""
    fan_out, fan_in = weight.shape
    bound = 1.0 / math.sqrt(fan_in)
    weight.copy_(torch.rand(weight.shape, generator=generator, dtype=weight.dtype) * 2 * bound - bound)
    zeros = min(math.ceil(sparsity * fan_in), fan_in - 1)
    if zeros:
        order = torch.rand(fan_out, fan_in, generator=generator).argsort(dim=1)
        weight.scatter_(1, order[:, :zeros], 0.0)


class Linear(nn.Module):
    """y = W x + b with sparse initialisation and zero bias, optionally stacked over a population."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        population: int | None = None,
        sparsity: float = 0.9,
        generators: Generators = None,
    ):
        super().__init__()
        pop = population_shape(population)
        self.population = population
        self.weight = nn.Parameter(torch.empty(*pop, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(*pop, out_features))
        for view, generator in zip(
            member_views(self.weight.data, population), member_generators(population, generators)
        ):
            sparse_init_(view, sparsity, generator)

    def forward(self, x: Tensor) -> Tensor:
        if self.population is None:  # any leading axes (a sequence of a batch) as one matrix product
            return nn.functional.linear(x, self.weight, self.bias)
        return matvec(self.weight, x) + self.bias


LAYER_NORM_EPS = 1e-5
LEAKY_SLOPE = 0.01  # torch's leaky_relu default
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "leaky_relu": nn.functional.leaky_relu,
    "tanh": torch.tanh,
    "relu": torch.relu,
}


def activation_derivative(activation: str, normed: Tensor) -> Tensor:
    """f′(n) of the activation named ``activation`` (a key of ``ACTIVATIONS``)."""
    if activation == "leaky_relu":
        return (normed > 0).to(normed.dtype) * (1 - LEAKY_SLOPE) + LEAKY_SLOPE
    if activation == "tanh":
        return 1 - torch.tanh(normed) ** 2
    return (normed > 0).to(normed.dtype)


def layer_norm(x: Tensor, eps: float = LAYER_NORM_EPS) -> Tensor:
    """LayerNorm without affine parameters over the last axis (per member), by torch (for autograd)."""
    return nn.functional.layer_norm(x, x.shape[-1:], eps=eps)


def layer_norm_forward(a: Tensor) -> tuple[Tensor, Tensor]:
    """(n, 1/σ): the normalised ``a`` and what ``layer_norm_backward`` needs of it."""
    centred = a - a.mean(-1, keepdim=True)
    inv_std = torch.rsqrt(centred.square().mean(-1, keepdim=True) + LAYER_NORM_EPS)
    return centred * inv_std, inv_std


def layer_norm_backward(dn: Tensor, normed: Tensor, inv_std: Tensor) -> Tensor:
    """dL/da from dL/dn, for n = ``layer_norm_forward(a)``."""
    return (dn - dn.mean(-1, keepdim=True) - normed * (dn * normed).mean(-1, keepdim=True)) * inv_std
