"""Streaming agents (batch size 1 per member, one update per environment step, no replay).

Each agent's rule is one class whose gradients come from autograd: the readable reference, and what CUDA graphs
replay. Its fast engines are subclasses that compute the same rule another way (``agent_class`` picks one).
"""

from ..engines import Engine, choose
from .qrc import QRC
from .qrc_native import NativeQRC
from .stream_ac import StreamAC
from .stream_ac_engines import FusedStreamAC, NativeStreamAC

AGENTS = {"stream_ac": StreamAC, "qrc": QRC}
ON_ENGINE = {(StreamAC, "fused"): FusedStreamAC, (StreamAC, "native"): NativeStreamAC, (QRC, "native"): NativeQRC}


def agent_class(agent: type, step: str) -> type:
    """The class of ``agent`` (a rule's class) that computes with the engine step ``step`` (``engines.Engine.step``):
    its subclass for the fused or native step, else the class itself."""
    return ON_ENGINE.get((agent, step), agent)


def make_agent(config, obs_size, action_space, init_generators, action_random, engine: Engine | None = None):
    """Agent ``config.agent`` (a streaming one) computing with ``engine`` (default: ``engines.choose(config)``)."""
    engine = engine or choose(config)
    agent = agent_class(AGENTS[config.agent], engine.step)
    return agent(config, obs_size, action_space, init_generators, action_random, engine)


__all__ = ["AGENTS", "QRC", "FusedStreamAC", "NativeQRC", "NativeStreamAC", "StreamAC", "agent_class", "make_agent"]
