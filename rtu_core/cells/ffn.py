"""Feed-forward "cell": y_t = x_t, no state (the paper code's ``ffn``, a feed-forward identity).

The network around it (feature layer and head) is then a memoryless feed-forward network: the
lower bound every memory method is compared with.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..layers import population_shape


class FFN(nn.Module):
    """The memoryless baseline (the paper's ``ffn``): y_t = x_t, no state."""

    def __init__(self, input_size: int, *, population: int | None = None):
        super().__init__()
        self.input_size, self.population = input_size, population

    @property
    def output_size(self) -> int:
        return self.input_size

    def initial_hidden(self) -> Tensor:
        return torch.zeros(*population_shape(self.population), 0)

    def forward(self, x: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        return x, hidden
