"""The engines: how a run computes its agent's step, chosen once per run by ``choose(config)``.

    autograd  the networks' own forward pass, gradients by ``backward()``: every agent, cell and device
    fused     Stream AC(λ)'s RTU-RTRL network with its backward pass written out (``fused.py``): no autograd graph
    native    C++ loops over flat per-member buffers (``native/``): Stream AC(λ) with ObGD and QRC(λ) on the CPU, and
              batched PPO's rollout of one environment
    graphs    on a GPU, the PyTorch step (fused or autograd) recorded once as CUDA graphs and replayed (``graphs.py``);
              QRC(λ)'s update there is one Triton kernel per network (``kernels.py``) where Triton is installed and
              no clipping is asked

``TrainConfig.engine`` names one of them, or ``eager`` (the PyTorch step on its own: fused where it applies, else
autograd) or ``auto``: native on the CPU where it applies and builds, graphs on a GPU, else eager. Asking for one that
does not apply to the run is a ``ConfigError``. Every engine computes the autograd step's numbers (the float64 twin
tests); this module is the one place that reads the engine and device settings and asks what is available.
"""

from __future__ import annotations

from dataclasses import dataclass

ENGINE_NAMES = ("autograd", "fused", "native", "graphs")
REQUESTS = ("auto", "eager", *ENGINE_NAMES)


@dataclass(frozen=True)
class Engine:
    """What a run computes its step with: ``step`` is 'autograd', 'fused' or 'native'; ``graphs``: replayed as CUDA
    graphs; ``kernel``: QRC(λ)'s update as the Triton kernel (on graphs only)."""

    step: str
    graphs: bool = False
    kernel: bool = False

    @property
    def name(self) -> str:
        """The engine's name in ``ENGINE_NAMES``."""
        return "graphs" if self.graphs else self.step


def fused_applies(config) -> bool:
    """The hand-written backward covers Stream AC(λ)'s RTU in RTRL mode with a linear read-out."""
    return (config.agent, config.cell, config.mode, config.head_width) == ("stream_ac", "rtu", "rtrl", 0)


def native_applies(config) -> bool:
    """The native step covers Stream AC(λ) with ObGD and QRC(λ) on the CPU (every cell; the Taylor correction with the
    linear RTU only), and PPO's rollout of one environment."""
    if config.device != "cpu":
        return False
    if config.agent == "ppo":
        return config.ppo_num_envs == 1
    return not (config.taylor_sensitivity and config.nonlinear_rtu) and (
        config.agent == "qrc" or config.optimizer == "obgd"
    )


def graphs_apply(config) -> bool:
    """CUDA graphs need a GPU and a step that keeps no Python state between steps: not PPO, not the Taylor correction
    (it keeps the previous parameters), not AdaptiveObGD (it counts its steps)."""
    return (
        config.device != "cpu"
        and config.agent in ("qrc", "stream_ac")
        and not config.taylor_sensitivity
        and not (config.agent == "stream_ac" and config.optimizer == "adaptive_obgd")
    )


def _eager(config) -> str:
    """The PyTorch step: the hand-written backward where it applies (never for QRC(λ) or PPO), else autograd."""
    return "fused" if fused_applies(config) else "autograd"


def preferred(config) -> Engine:
    """The engine ``config`` asks for, from its settings alone (the native step taken to be available); raises
    ``ConfigError`` where the engine it names does not apply."""
    from ..config import ConfigError

    asked = config.engine
    if asked == "native" and (config.agent == "ppo" or not native_applies(config)):
        raise ConfigError(
            "engine native runs stream_ac (obgd) or qrc on the cpu (and taylor-sensitivity with the linear rtu "
            "only); use engine auto or eager"
        )
    if asked == "fused" and not fused_applies(config):
        raise ConfigError("engine fused runs stream_ac with cell rtu, mode rtrl and head-width 0; use auto or eager")
    if asked == "graphs" and not graphs_apply(config):
        raise ConfigError(
            "engine graphs runs stream_ac (obgd) or qrc on device cuda, without taylor-sensitivity; use auto or eager"
        )
    if asked in ("autograd", "fused", "native"):
        return Engine(asked)
    if asked == "eager":
        return Engine(_eager(config))
    if graphs_apply(config):  # (asked is auto or graphs here)
        kernel = config.agent == "qrc" and not config.grad_clip
        return Engine(_eager(config), graphs=True, kernel=kernel)
    if native_applies(config):
        return Engine("native")
    return Engine(_eager(config))


def choose(config) -> Engine:
    """The engine a run of ``config`` uses: ``preferred``, where the native step loads (else, under ``auto``, the
    eager step, said once; under ``native``, the reason it cannot load is raised) and the Triton kernel is
    installed."""
    from . import kernels, native

    engine = preferred(config)
    if engine.step == "native" and not native.available():
        if config.engine == "native":
            native.load()  # raises with the reason the native step is missing
        return Engine(_eager(config))
    if engine.kernel and not kernels.available(config.device):
        return Engine(engine.step, graphs=True)
    return engine
