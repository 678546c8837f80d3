"""CUDA graphs of the streaming step: a population's ``act`` and ``learn`` recorded once on the GPU, then replayed.

On a GPU the eager step of paper-size agents is bound by kernel launches, not by the card: a QRC(λ) step is some
hundreds of small kernels, each launched from Python, about 100 steps/s whatever the population. A CUDA graph
records those kernels once, with the addresses they read and write, and each replay launches them all at once.
The replayed kernels are the eager step's, in its order (for QRC(λ) without clipping, its update is one kernel of
``rtu_core.engines.kernels`` doing the same float operations), so the numbers are the eager step's.

A step can be recorded because, while ``recording()``:
- it takes no branch on tensor values: an episode's end zeroes the ended members' memories and traces through
  the mask itself, not after asking ``mask.any()`` (which would wait for the GPU);
- it copies nothing from the host: the random draws and ε of ``act`` come from ``agent.act_inputs`` on the host
  and are copied into the recorded inputs before each replay;
- every tensor it carries to the next step keeps its address: ``act`` reads the memories M and leaves their
  advanced values N in the graph's pool; ``learn`` uses N, and after its backward pass copies N into M for the
  next ``act``. Parameters and eligibility traces are updated in place by both paths.

Python state read while recording (the RTU's cached coefficients) is dropped before each recording and after each
replay, so a recorded step computes it afresh and eager code after a replay never reads a stale copy.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor

from ..network import memory_tensors

_recording = False


def recording() -> bool:
    """Whether a step is being recorded into a CUDA graph (then no code may wait on a tensor's value)."""
    return _recording


@contextmanager
def _record(graph, pool):
    global _recording
    _recording = True
    try:
        with torch.cuda.graph(graph, pool=pool):
            yield
    finally:
        _recording = False


class GraphedAgent:
    """A streaming agent whose training step (``act`` then ``learn``) runs as two replayed CUDA graphs.

    The first ``WARM_UP`` steps run eagerly (cuBLAS, the autograd engine and the allocator set themselves up
    outside any graph); the next step is recorded and every later one replayed. Evaluation (``learn=False``),
    greedy acting and every other attribute go to the agent itself."""

    WARM_UP = 2
    # a checkpoint keeps the agent alone: a resumed run warms up and records its own graphs
    checkpoint_skip = ("_warm_steps", "_act_graph", "_learn_graph", "_pool", "_pending", "_td_error", "_side_stream")
    checkpoint_skip += ("_act_inputs", "_learn_inputs", "_carried", "_advanced")

    def __init__(self, agent):
        self.agent = agent
        self._forget_graphs()

    def _forget_graphs(self) -> None:
        self._warm_steps = 0
        self._act_graph = self._learn_graph = None
        self._pool = self._pending = self._td_error = self._side_stream = None
        self._act_inputs: list[Tensor] = []
        self._learn_inputs: list[Tensor] = []
        self._carried: dict = {}  # the memories M every act reads (the agent's own tensors)
        self._advanced: dict = {}  # their values N after act, in the graph's pool

    def __getattr__(self, name: str):
        return getattr(self.agent, name)

    def act(self, obs: Tensor, greedy: bool = False, learn: bool = True):
        agent = self.agent
        if greedy or not learn:
            return agent.act(obs, greedy, learn)
        if self._warm_steps < self.WARM_UP:
            return self._warm_up(agent.act, obs)
        inputs = agent.act_inputs(greedy)
        if self._act_graph is None:
            return self._record_act(obs, inputs)
        if any(agent.memories[n] is not m for n, m in self._carried.items()):
            self._adopt_memories()  # eager code replaced them (an evaluation between sittings)
        self._act_inputs[0].copy_(obs)
        for static, value in zip(self._act_inputs[1:], inputs):
            static.copy_(value) if isinstance(value, Tensor) else static.fill_(value)
        self._act_graph.replay()
        agent.memories.update(self._advanced)
        return self._pending

    def learn(self, step, reward: Tensor, next_obs: Tensor, terminated: Tensor, done: Tensor) -> Tensor:
        agent = self.agent
        if self._act_graph is None:
            self._warm_steps += 1
            td_error = self._warm_up(agent.learn, step, reward, next_obs, terminated, done)
            for name, value in vars(step).items():  # the spent step lets its autograd graph go (see _warm_up)
                if isinstance(value, Tensor) and value.grad_fn is not None:
                    setattr(step, name, value.detach())
            return td_error
        if step is not self._pending:
            raise RuntimeError("a recorded learn takes the step its recorded act returned")
        if self._learn_graph is None:
            return self._record_learn(reward, next_obs, terminated, done)
        for static, value in zip(self._learn_inputs, (reward, next_obs, terminated, done)):
            static.copy_(value)
        self._learn_graph.replay()
        agent.memories.update(self._carried)
        agent.forget_coefficients()
        return self._td_error

    # -- recording ------------------------------------------------------------------------------------------
    def _warm_up(self, method, *args):
        """An eager call on a side stream, as torch's recipe for recording asks: autograd's nodes remember the stream
        they were made on, and a recording may not wait for the default stream. No node of a warm-up step outlives
        it (``learn`` drops the spent step's graph), so the recorded step makes its own."""
        if self._side_stream is None:
            self._side_stream = torch.cuda.Stream()
        current = torch.cuda.current_stream()
        self._side_stream.wait_stream(current)
        with torch.cuda.stream(self._side_stream):
            result = method(*args)
        current.wait_stream(self._side_stream)
        return result

    def _record_act(self, obs: Tensor, inputs: tuple):
        agent = self.agent
        self._act_inputs = [obs.clone()] + [
            v.clone() if isinstance(v, Tensor) else torch.tensor(v, dtype=obs.dtype, device=obs.device) for v in inputs
        ]
        self._carried = dict(agent.memories)
        self._act_graph, self._pool = torch.cuda.CUDAGraph(), torch.cuda.graph_pool_handle()
        agent.forget_coefficients()
        with _record(self._act_graph, self._pool):
            self._pending = agent.device_act(*self._act_inputs)
        self._advanced = dict(agent.memories)
        self._act_graph.replay()
        agent.forget_coefficients()
        return self._pending

    def _record_learn(self, *inputs: Tensor) -> Tensor:
        agent = self.agent
        self._learn_inputs = [t.clone() for t in inputs]
        self._learn_graph = torch.cuda.CUDAGraph()
        with _record(self._learn_graph, self._pool):
            self._td_error = agent.learn(self._pending, *self._learn_inputs)
            self._copy_into_carried()  # N -> M, after the backward pass has read M
        self._learn_graph.replay()
        agent.memories.update(self._carried)
        agent.forget_coefficients()
        return self._td_error

    def _copy_into_carried(self) -> None:
        """The agent's current memories copied into the tensors every recorded act reads."""
        for name, carried in self._carried.items():
            for target, source in zip(memory_tensors(carried), memory_tensors(self.agent.memories[name])):
                target.copy_(source)

    def _adopt_memories(self) -> None:
        """Copy the agent's current memories into the recorded ones and hand those back to it."""
        self._copy_into_carried()
        self.agent.memories.update(self._carried)
