"""What every streaming agent shares: named memory networks, each with its per-member memory."""
from __future__ import annotations

from torch import Tensor

from ..network import Memory, MemoryNetwork


class MemoryAgent:
    networks: dict[str, MemoryNetwork]
    memories: dict[str, Memory]

    def reset_memory(self, mask: Tensor | None = None) -> None:
        """Zero the memories of all networks: of every member, or of the members where mask (P,) is True."""
        if mask is None:
            self.memories = {name: net.initial_memory() for name, net in self.networks.items()}
        elif bool(mask.any()):  # most steps end no episode: nothing to zero
            self.memories = {name: MemoryNetwork.reset_memory(m, mask) for name, m in self.memories.items()}
