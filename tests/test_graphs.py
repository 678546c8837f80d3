"""``graphs``: the GPU's recorded step.

Everywhere: while it is recorded, a step reads no tensor's value on the host (what a CUDA graph cannot hold: the
GPU would have to finish first) and gives the eager step's numbers; and ``GraphedAgent`` (warm-up, recording, replay
after replay, the memories carried between its two graphs, checkpoint and resume) gives the eager run's numbers bit
for bit on CUDA graphs emulated on the CPU (every op of a recording kept and run again on the same tensors). Where
torch sees a GPU: the same on real CUDA graphs."""

import dataclasses
from contextlib import contextmanager, nullcontext

import gymnasium as gym
import pytest
import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from rtu_core import EpisodeEnd, Progress, TrainConfig, checkpoint, engines, train, training
from rtu_core.agents import make_agent
from rtu_core.engines import graphs
from rtu_core.engines.graphs import GraphedAgent
from rtu_core.events import Checkpoint, RunEnd
from rtu_core.rng import MemberRandom
from rtu_core.training import Run, load_checkpoint

aten = torch.ops.aten
WAITS = {aten._local_scalar_dense, aten.nonzero, aten.is_nonzero, aten.item}  # a tensor's value read on the host


class NoWaits(TorchDispatchMode):
    """Fails on any op that reads a tensor's value on the host."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in WAITS:
            raise AssertionError(f"{func} reads a tensor's value while recording")
        return func(*args, **(kwargs or {}))


@contextmanager
def recording(agent):
    agent.forget_coefficients()  # as before a recording (a cached value would not be recorded)
    graphs._recording = True
    try:
        with NoWaits():
            yield
    finally:
        graphs._recording = False


KINDS = {
    "qrc-rtu-rtrl": (dict(agent="qrc"), 2),
    "qrc-watkins": (dict(agent="qrc", no_gradient_correction=True), 2),
    "qrc-gru": (dict(agent="qrc", cell="gru", mode="tbptt"), 2),
    "stream-ac-rtu-rtrl": (dict(agent="stream_ac"), 2),
    "stream-ac-gaussian": (dict(agent="stream_ac"), None),
    "stream-ac-ffn": (dict(agent="stream_ac", cell="ffn", mode="tbptt"), 2),
    "stream-ac-nonlinear-gru-head": (dict(agent="stream_ac", cell="gru", mode="tbptt", head_width=4), 2),
}


def make(kind: str):
    fields, actions = KINDS[kind]
    config = TrainConfig(**fields, engine="eager", dtype="float64", population=3, hidden_size=6, width=5, steps=50)
    space = gym.spaces.Discrete(actions) if actions else gym.spaces.Box(-1, 1, (2,))
    seeds = [11, 12, 13]
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    return make_agent(config, 3, space, generators, MemberRandom(seeds, dtype=torch.float64))


def state(agent) -> list[torch.Tensor]:
    return [p.detach() for net in agent.networks.values() for p in net.parameters()] + agent._memory_tensors()


@pytest.mark.parametrize("kind", KINDS)
def test_recorded_step_reads_no_tensor_value_and_gives_the_eager_numbers(kind):
    agent, twin = make(kind), make(kind)
    data = torch.Generator().manual_seed(0)
    for t in range(8):
        obs, next_obs = torch.randn(2, 3, 3, generator=data, dtype=torch.float64)
        reward = torch.randn(3, generator=data, dtype=torch.float64)
        done = torch.tensor([t % 3 == 2, False, t == 4])  # episodes end for some members on some steps
        terminated = done & torch.tensor([True, False, False])
        expected = twin.learn(twin.act(obs), reward, next_obs, terminated, done)
        # ε as a recorded graph holds it: a 0-d tensor, not a Python float
        inputs = [torch.tensor(v, dtype=torch.float64) if isinstance(v, float) else v for v in agent.act_inputs()]
        with recording(agent):
            td_error = agent.learn(agent.device_act(obs, *inputs), reward, next_obs, terminated, done)
        assert torch.equal(td_error, expected)
    for ours, theirs in zip(state(agent), state(twin), strict=True):
        assert torch.equal(ours, theirs)


def test_graphed_agent_checkpoints_without_its_graphs():
    wrapped = GraphedAgent(make("qrc-rtu-rtrl"))
    wrapped._warm_steps, wrapped._act_graph = 5, object()  # as after recording
    wrapped.agent.steps_taken = 7
    saved = checkpoint.state_of(wrapped)
    assert set(saved["attrs"]) == {"agent"}
    fresh = GraphedAgent(make("qrc-rtu-rtrl"))
    checkpoint.restore(fresh, saved)
    assert fresh._act_graph is None and fresh._warm_steps == 0  # a resumed run records its own graphs
    assert fresh.steps_taken == 7 and fresh.engine == "autograd"  # the agent's own attributes


class EmulatedGraph:
    """A CUDA graph's semantics on the CPU: recording runs the step and keeps every op with the very tensors it read
    and wrote; a replay runs the ops again on those tensors (no Python of the step runs), writing each op's results
    into the tensors it wrote when recorded. Views alias their bases, so they are not run again; ops that write
    their arguments (in place) write them again. Python values read while recording stay as they were then, as in
    a real graph. A real recording runs nothing and its first replay runs the step; here the recording has run it,
    so the first replay does nothing."""

    def __init__(self):
        self.ops, self.recorded = [], False

    def replay(self):
        if not self.recorded:
            self.recorded = True
            return
        with torch.no_grad():
            for func, args, kwargs, out in self.ops:
                if func.is_view:
                    continue
                result = func(*args, **kwargs)
                if func._schema.is_mutable:
                    continue
                for target, value in zip(pytree.tree_leaves(out), pytree.tree_leaves(result)):
                    if isinstance(target, torch.Tensor):
                        target.data.copy_(value)  # .data: a replay moves no version counter


class Recording(NoWaits):
    def __init__(self, graph: EmulatedGraph):
        super().__init__()
        self.graph = graph

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = super().__torch_dispatch__(func, types, args, kwargs)
        self.graph.ops.append((func, args, kwargs or {}, out))
        return out


class Stream:
    def wait_stream(self, other):
        pass


def emulate_cuda_graphs(monkeypatch) -> None:
    """``GraphedAgent`` on the CPU: torch.cuda's graph and stream calls replaced by ``EmulatedGraph``, and the
    training loop's engine, for engine eager (the agents' PyTorch step), recorded as graphs."""
    monkeypatch.setattr(torch.cuda, "CUDAGraph", EmulatedGraph)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: None)
    monkeypatch.setattr(torch.cuda, "graph", lambda graph, pool=None: Recording(graph))
    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", Stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: nullcontext())
    graphed = lambda config: dataclasses.replace(engines.preferred(config), graphs=config.engine == "eager")  # noqa: E731
    monkeypatch.setattr(training, "choose", graphed)


EMULATED = dict(chain_length=3, steps=150, hidden_size=6, width=5, eval_episodes=3, population=3, progress_every=1)


@pytest.mark.parametrize(
    "fields",
    [
        dict(agent="qrc"),
        dict(agent="qrc", cell="gru", mode="tbptt", grad_clip=0.5),
        dict(agent="qrc", no_gradient_correction=True, dtype="float64"),
        dict(agent="stream_ac"),
        dict(agent="stream_ac", cell="ffn", mode="tbptt", head_width=4),
    ],
)
def test_graphed_agent_replays_the_eager_run(fields, monkeypatch):
    """Warm-up, recording, replay after replay, the memories carried between the two graphs, evaluation after them:
    on emulated graphs the run's TD errors and episodes are the eager run's, bit for bit."""
    config = TrainConfig(**fields, engine="eager", seed=2, **EMULATED)
    plain_td, plain_episodes = td_errors_and_episodes(config)
    emulate_cuda_graphs(monkeypatch)
    assert isinstance(Run(config).agent, GraphedAgent)
    td, episodes = td_errors_and_episodes(config)
    assert torch.equal(td, plain_td)
    assert episodes == plain_episodes and len(episodes) > 20


def test_graphed_agent_resumes_from_its_checkpoint_on_emulated_graphs(monkeypatch, tmp_path):
    emulate_cuda_graphs(monkeypatch)
    assert_resumed_run_equals_the_whole(TrainConfig(agent="qrc", engine="eager", seed=4, **EMULATED), tmp_path)


GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
SMALL = dict(chain_length=3, steps=300, hidden_size=8, width=8, eval_episodes=5, population=3, progress_every=1)
RUNS = [("qrc", "rtu", "rtrl"), ("stream_ac", "rtu", "rtrl"), ("qrc", "gru", "tbptt"), ("stream_ac", "ffn", "tbptt")]


def td_errors_and_episodes(config, **kwargs):
    td, episodes = [], []
    for event in train(config, **kwargs):
        if isinstance(event, Progress):
            td.append(torch.from_numpy(event.td_error))
        elif isinstance(event, EpisodeEnd):
            episodes.append((event.member, event.step, event.episode_return))
    return torch.stack(td), episodes


@GPU
@pytest.mark.parametrize("agent,cell,mode", RUNS)
def test_graphed_run_gives_the_eager_numbers(agent, cell, mode):
    """float32 on the GPU: every TD error of every member and every episode as the eager step's, bit for bit."""
    config = TrainConfig(agent=agent, cell=cell, mode=mode, device="cuda", seed=3, **SMALL)
    assert Run(config).engine.graphs and isinstance(Run(config).agent, GraphedAgent)
    eager = TrainConfig(**{**config.to_dict(), "engine": "eager"})
    assert not engines.choose(eager).graphs
    graphed_td, graphed_episodes = td_errors_and_episodes(config)
    eager_td, eager_episodes = td_errors_and_episodes(eager)
    assert torch.equal(graphed_td, eager_td)
    assert graphed_episodes == eager_episodes and len(graphed_episodes) > 50


@GPU
def test_graphed_run_resumes_from_its_checkpoint(tmp_path):
    assert_resumed_run_equals_the_whole(TrainConfig(agent="qrc", device="cuda", seed=4, **SMALL), tmp_path)


def assert_resumed_run_equals_the_whole(config, tmp_path):
    """Stopped after its first checkpoint (at step 50) and resumed from it, a run gives the uninterrupted run's TD
    errors and episodes, bit for bit."""
    whole = td_errors_and_episodes(config)
    saved, first = [], []
    for event in train(config, checkpoint_every=50, stop=lambda: bool(saved)):
        if isinstance(event, Checkpoint):
            event.save(tmp_path / "checkpoint.pt")
            saved.append(event.step)
        elif isinstance(event, RunEnd):
            assert event.status == "interrupted"
        first.append(event)
    rest = td_errors_and_episodes(config, resume=load_checkpoint(tmp_path / "checkpoint.pt"))
    td = torch.stack([torch.from_numpy(e.td_error) for e in first if isinstance(e, Progress)])
    assert torch.equal(torch.cat([td, rest[0]]), whole[0])
    episodes = [(e.member, e.step, e.episode_return) for e in first if isinstance(e, EpisodeEnd)]
    assert episodes + rest[1] == whole[1]
