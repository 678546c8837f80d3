"""Gated recurrent unit (Cho et al. 2014; PyTorch's gate convention), stacked over an optional population.

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1},   y_t = h_t

Trained by autograd only: TBPTT(1) when the caller detaches the carried state (docs/method.md §3).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..layers import Generators, matvec, member_generators, member_views, population_shape


class GRU(nn.Module):
    """A gated recurrent unit over an optional population axis; trained by autograd (TBPTT(1) here)."""

    def __init__(
        self, input_size: int, hidden_size: int, *, population: int | None = None, generators: Generators = None
    ):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.population = population
        pop = population_shape(population)
        self.weight_ih = nn.Parameter(torch.empty(*pop, 3 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(*pop, 3 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(*pop, 3 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(*pop, 3 * hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)  # PyTorch's GRU initialisation U(-1/sqrt(n), 1/sqrt(n))
        with torch.no_grad():
            views = zip(
                *(member_views(p.data, population) for p in self.parameters()),
                member_generators(population, generators),
            )
            for *tensors, generator in views:
                for t in tensors:
                    t.copy_(torch.rand(t.shape, generator=generator, dtype=t.dtype) * 2 * bound - bound)

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def initial_hidden(self) -> Tensor:
        return torch.zeros(
            *population_shape(self.population),
            self.hidden_size,
            dtype=self.weight_ih.dtype,
            device=self.weight_ih.device,
        )

    def forward(self, x: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        gi = matvec(self.weight_ih, x) + self.bias_ih
        gh = matvec(self.weight_hh, hidden) + self.bias_hh
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        reset, update = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        candidate = torch.tanh(i_n + reset * h_n)
        h = (1 - update) * candidate + update * hidden
        return h, h
