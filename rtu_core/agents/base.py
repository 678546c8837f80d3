"""What every streaming agent shares: named memory networks, each with its per-member memory, and (for the
RTRL staleness study, paper §4.4) the episode inputs that let it recompute RTRL states under current parameters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..cells import RTRLState
from ..engines.graphs import recording
from ..network import Memory, MemoryNetwork, memory_tensors
from ..normalize import ObservationNormalizer, RewardScaler
from ..optim import per_member


@dataclass
class Pending:
    """What ``act`` hands to ``learn``: the action a_t (P, ...) and, in an agent's subclass, what its engine kept
    from the forward pass to update from the transition a_t begins. It lives for one step: nothing of it is
    stashed on the agent, so a checkpoint between steps holds none of it."""

    action: Tensor


class EpisodeHistory:
    """The network inputs o_t of all members since the oldest running episode start, with a flag marking each
    member's first step of an episode. Entries older than every member's current episode are dropped."""

    def __init__(self, population: int):
        self.observations: list[Tensor] = []
        self.starts: list[Tensor] = []
        self.pending = torch.ones(population, dtype=torch.bool)  # next input starts an episode
        self._last_start = np.zeros(population, dtype=np.int64)

    def append(self, obs: Tensor) -> None:
        self._last_start[self.pending.numpy()] = len(self.observations)
        self.observations.append(obs.detach())
        self.starts.append(self.pending.clone())
        self.pending.zero_()
        drop = int(self._last_start.min())
        if drop:
            del self.observations[:drop], self.starts[:drop]
            self._last_start -= drop

    def reset(self, mask: Tensor | None) -> None:
        """Members in ``mask`` (all if None) begin a new episode with their next input."""
        if mask is None:
            self.pending.fill_(True)
        else:
            self.pending |= mask


class MemoryAgent:
    """What the streaming agents share: their networks, each network's memory, and the episode history."""

    networks: dict[str, MemoryNetwork]
    memories: dict[str, Memory]
    history: EpisodeHistory | None = None
    lanes = 1  # environments per member: one, streaming
    engine = "autograd"  # the engine step (``engines.Engine.step``) this class computes its gradients with

    def check_engine(self, engine) -> None:
        """Refuse a run's engine (``engines.choose``) whose step is another class's (``agents.agent_class``)."""
        if engine is not None and engine.step != self.engine:
            raise ValueError(f"{type(self).__name__} steps with {self.engine}, the run chose {engine.step}")

    @staticmethod
    def lanes_of(config) -> int:
        """Environments per member."""
        return 1

    def normalizers(self, config, obs_size: int) -> tuple[ObservationNormalizer, RewardScaler]:
        """The streaming normalisation of observations and rewards (docs/method.md §4), per member."""
        return ObservationNormalizer(config.population, obs_size), RewardScaler(config.population, config.gamma)

    def keep_history(self, population: int) -> None:
        """Record every member's episode inputs from now on (needed by ``fresh_memories``)."""
        self.history = EpisodeHistory(population)

    def remember(self, obs: Tensor) -> None:
        """Called by ``act`` with the input o_t of a learning step."""
        if self.history is not None:
            self.history.append(obs)

    def reset_memory(self, mask: Tensor | None = None) -> None:
        """Zero the memories of all networks: of every member, or of the members where mask (P,) is True."""
        if mask is None:
            self.memories = {name: net.initial_memory() for name, net in self.networks.items()}
        elif recording():  # inside a CUDA graph: the mask itself picks the rows (its value cannot be asked)
            with torch.no_grad():
                for t in self._memory_tensors():
                    t.masked_fill_(per_member(mask, t), 0)
        elif bool(mask.any()):  # most steps end no episode: nothing to zero
            # in place, the ended members' rows only: a copy of every member's sensitivities (megabytes in a
            # population at the paper's size) on each episode's end would cost more than the step itself
            rows = mask.nonzero().squeeze(1)
            with torch.no_grad():
                for t in self._memory_tensors():
                    t.index_fill_(0, rows.to(t.device), 0)
        else:
            return
        if self.history is not None:
            self.history.reset(mask)

    def forget_coefficients(self) -> None:
        """Drop every RTU's cached coefficients (``RTU.forget_coefficients``): after a write to the parameters that
        their version counters do not see (a Triton kernel, a CUDA graph's replay), and before a recording."""
        for net in self.networks.values():
            if hasattr(net.cell, "forget_coefficients"):
                net.cell.forget_coefficients()

    def _memory_tensors(self) -> list[Tensor]:
        return [t for memory in self.memories.values() for t in memory_tensors(memory)]

    def fresh_memories(self) -> dict[str, RTRLState]:
        """Each RTRL network's state replayed from every member's episode start under the current parameters."""
        history = self.history
        if not history.observations:
            return {name: net.initial_memory() for name, net in self.networks.items()}
        obs, starts = torch.stack(history.observations), torch.stack(history.starts)
        return {
            name: MemoryNetwork.reset_memory(net.replay(obs, starts), history.pending)
            for name, net in self.networks.items()
        }

    def refresh_rtrl(self) -> None:
        """Replace the (stale) online RTRL states by their replay under the current parameters."""
        self.memories.update(self.fresh_memories())

    def staleness(self) -> dict[str, np.ndarray]:
        """Per network, the relative error ‖S_online - S_fresh‖ / ‖S_fresh‖ of each member's RTRL sensitivities
        (all parameters together; S + C with the Taylor correction) against their replay under the current
        parameters; NaN where S_fresh = 0."""
        errors = {}
        for name, fresh in self.fresh_memories().items():
            online = torch.cat([s.flatten(1) for s in self.memories[name].credited_sensitivities], dim=1)
            fresh = torch.cat([s.flatten(1) for s in fresh.sensitivities.values()], dim=1)
            # member by member, so that a member's number does not depend on the population's size
            errors[name] = np.array(
                [float((o - f).norm() / f.norm()) if f.norm() > 0 else np.nan for o, f in zip(online, fresh)]
            )
        return errors
