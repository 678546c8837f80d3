"""Recurrent cells: ``RTU`` (exact RTRL), ``GRU`` and the memoryless ``FFN`` baseline.

Every cell is an ``nn.Module`` with ``initial_hidden()`` and ``forward(x, hidden) -> (y, hidden)``;
the RTU adds ``initial_rtrl_state()``, ``rtrl_step(x, state)`` and ``rtrl_grads(dy, state)``.
"""

from .ffn import FFN
from .gru import GRU
from .rtu import RTU, RTRLState, TaylorRTRLState

__all__ = ["RTU", "RTRLState", "TaylorRTRLState", "GRU", "FFN"]
