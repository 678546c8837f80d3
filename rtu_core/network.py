"""The agents' network (``docs/method.md`` §2): observation -> feature layers -> cell -> head.

    x_t = act(LayerNorm(W_f o_t + b_f))                  sparse-initialised feature block (``feature_layers`` of them)
    y_t, m_t = cell(x_t, m_{t-1})                       RTU (RTRL or TBPTT(1)), GRU or FFN
    out_t = W_o act(LayerNorm(W_h y_t + b_h)) + b_o      head (a plain linear read-out if head_width = 0)

``mode="rtrl"`` carries the RTU's RTRL state (hidden state and sensitivities): gradients of out_t reach
the RTU parameters through the exact RTRL sensitivities, and the feature layers through x_t only. With
``taylor=True`` the state also carries the paper's Taylor correction of the sensitivities (``TaylorRTRLState``).
``mode="tbptt"`` carries the cell's hidden state detached, so every gradient has a one-step horizon.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .cells import FFN, GRU, RTU, RTRLState
from .layers import ACTIVATIONS, Generators, Linear, layer_norm, member_generators

CELLS = ("rtu", "gru", "ffn")
MODES = ("rtrl", "tbptt")

Memory = Tensor | RTRLState


def memory_tensors(memory: Memory) -> tuple[Tensor, ...]:
    """The tensors of one network's memory: an RTRL state's fields, or the carried vector."""
    return tuple(memory) if isinstance(memory, tuple) else (memory,)


class MemoryNetwork(nn.Module):
    """Feature blocks, a cell and a head, optionally stacked over a population; ``step`` advances its memory."""

    def __init__(
        self,
        obs_size: int,
        out_size: int,
        *,
        cell: str = "rtu",
        mode: str = "rtrl",
        hidden_size: int = 192,
        width: int = 128,
        feature_layers: int = 1,
        head_width: int = 0,
        nonlinear_rtu: bool = False,
        rtu_r_min: float = 0.0,
        activation: str = "leaky_relu",
        sparsity: float = 0.9,
        taylor: bool = False,
        population: int | None = None,
        generators: Generators = None,
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r} (choose from {', '.join(CELLS)})")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (choose from {', '.join(MODES)})")
        if mode == "rtrl" and cell != "rtu":
            raise ValueError(f"mode 'rtrl' needs the rtu cell; {cell} is trained with mode 'tbptt'")
        if taylor and mode != "rtrl":
            raise ValueError("the Taylor correction applies to RTRL sensitivities (mode 'rtrl')")
        self.mode = mode
        self.population = population
        self.taylor = taylor
        self.activation_name, self.activation = activation, ACTIVATIONS[activation]
        gens = member_generators(population, generators)
        common = dict(population=population, generators=gens if population is not None else gens[0])
        self.features = nn.ModuleList(
            [Linear(obs_size if i == 0 else width, width, sparsity=sparsity, **common) for i in range(feature_layers)]
        )
        if cell == "rtu":
            self.cell = RTU(width, hidden_size, nonlinear=nonlinear_rtu, r_min=rtu_r_min, **common)
        elif cell == "gru":
            self.cell = GRU(width, hidden_size, **common)
        else:
            self.cell = FFN(width, population=population)
        self.head_hidden = (
            Linear(self.cell.output_size, head_width, sparsity=sparsity, **common) if head_width else None
        )
        self.head = Linear(head_width or self.cell.output_size, out_size, sparsity=sparsity, **common)

    def initial_memory(self) -> Memory:
        if self.mode == "tbptt":
            return self.cell.initial_hidden().to(self.head.weight.device)
        return self.cell.initial_taylor_state() if self.taylor else self.cell.initial_rtrl_state()

    def _features(self, obs: Tensor) -> Tensor:
        x = obs
        for layer in self.features:
            x = self.activation(layer_norm(layer(x)))
        return x

    def _read_out(self, y: Tensor) -> Tensor:
        if self.head_hidden is not None:
            y = self.activation(layer_norm(self.head_hidden(y)))
        return self.head(y)

    def step(self, obs: Tensor, memory: Memory) -> tuple[Tensor, Memory]:
        """One step from memory m_{t-1} and observation o_t; returns (out_t, m_t)."""
        x = self._features(obs)
        if self.mode == "rtrl":
            y, memory = self.cell.rtrl_step(x, memory)
        else:
            y, memory = self.cell(x, memory.detach())
            memory = memory.detach()
        return self._read_out(y), memory

    @torch.no_grad()
    def evaluate(self, obs: Tensor, memory: Memory) -> Tensor:
        """out_t from m_{t-1} and o_t without advancing anything (no sensitivities): for bootstrapping."""
        hidden = memory.features if isinstance(memory, RTRLState) else memory
        return self.recur(obs, hidden)[0]

    @torch.no_grad()
    def recur(self, obs: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """(out_t, c_t) from the carried vector c_{t-1} by the plain recurrence, without gradients or sensitivities."""
        y, hidden = self.cell(self._features(obs), hidden)
        return self._read_out(y), hidden

    def unroll(self, obs: Tensor, hidden0: Tensor, starts: Tensor, rtrl: bool | None = None) -> Tensor:
        """Outputs (T, B, out) of B sequences obs (T, B, d) from carried vectors hidden0 (B, h), with gradients
        through the whole sequence; the memory is zeroed where ``starts`` (T, B) marks an episode's first step.

        The feature layers and the head act on the whole sequence at once; only the cell steps through time.
        ``rtrl`` (default: ``mode == "rtrl"``): the RTU's exact RTRL, sensitivities starting at zero at the sequence
        start; else autograd BPTT through the cell (nothing detached) -- for the linear RTU by its parallel
        ``scan``. Within a sequence the two gradients are equal (tests/test_ppo.py); BPTT is far cheaper for a
        batch of sequences, RTRL shows the equality."""
        use_rtrl = self.mode == "rtrl" if rtrl is None else rtrl
        x = self._features(obs)
        if use_rtrl:
            c1, c2 = hidden0.chunk(2, dim=-1)
            zero = self.cell.initial_rtrl_state()
            memory = RTRLState(torch.complex(c1, c2), *(s.expand(len(hidden0), *s.shape).clone() for s in zero[1:]))
            step = self.cell.rtrl_step
        elif isinstance(self.cell, RTU) and not self.cell.nonlinear:
            return self._read_out(self.cell.scan(x, hidden0, starts)[0])
        else:
            memory, step = hidden0, self.cell
        outputs = []
        for t in range(len(obs)):
            y, memory = step(x[t], self.reset_memory(memory, starts[t]))
            outputs.append(y)
        return self._read_out(torch.stack(outputs))

    @torch.no_grad()
    def replay(self, observations: Tensor, starts: Tensor) -> RTRLState:
        """The RTRL state (h_t, S_t) recomputed under the *current* parameters (mode rtrl only).

        Online RTRL advances S_t = D_t ⊙ (λ_t S_{t-1} + J_t) with the parameters of each step, so after updates
        S_t is stale: it is not ∂h_t/∂p of the current network. Replaying the episode's inputs o_1 … o_t
        (T, P, d) from zero, with the memory zeroed where ``starts`` (T, P) marks an episode's first step,
        gives the sensitivities that a network with fixed current parameters would carry (with ``taylor``: and a
        zero correction)."""
        memory = self.cell.initial_rtrl_state()
        for obs, start in zip(observations, starts):
            memory = self.cell.advance(self._features(obs), self.reset_memory(memory, start))
        if self.taylor:
            memory = type(self.initial_memory())(*memory, *(torch.zeros_like(s) for s in memory[1:]))
        return memory

    @staticmethod
    def reset_memory(memory: Memory, mask: Tensor) -> Memory:
        """Zero the memory (hidden state and sensitivities) of the members where mask (P,) is True."""

        def zero(t: Tensor) -> Tensor:
            return t.masked_fill(mask.view(-1, *([1] * (t.dim() - 1))), 0)

        if isinstance(memory, RTRLState):
            return type(memory)(*(zero(t) for t in memory))
        return zero(memory)

    @staticmethod
    def hidden_state(memory: Memory) -> Tensor:
        """The recurrent state to look at: complex h_t for the RTU in RTRL mode, else the carried vector."""
        return memory.hidden if isinstance(memory, RTRLState) else memory

    @staticmethod
    def sensitivity_norms(memory: Memory) -> dict[str, Tensor]:
        """‖S^p_t‖₂ per parameter group and member (RTRL mode only; empty otherwise)."""
        if not isinstance(memory, RTRLState):
            return {}
        return {name: s.abs().flatten(1).norm(dim=1) for name, s in memory.sensitivities.items()}
