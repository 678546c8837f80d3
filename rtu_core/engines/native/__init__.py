"""The native engine: the streaming step of RTU-RTRL networks as compiled C++ loops (``rtu_rtrl.cpp``).

A streaming step is a few hundred small tensor operations; in eager PyTorch its cost is the per-operation dispatch
and the full-size temporaries, not the arithmetic. Here a network's forward pass (with the RTRL advance of its
sensitivities, in place), its backward pass (exact RTRL credit, the hand-written backward of ``rtu_core.engines.fused``)
and the ObGD / QRC(λ) updates are one call each, looping member by member over flat (P, N) buffers:

    forward    x = f(LayerNorm(W_f o + b_f)) (per feature block),  h_t = f(λ h_{t-1} + γ B x),
               S^p_t = D (λ S^p_{t-1} + J^p_t)  (in place),  y = tanh([Re h_t, Im h_t]),
               [linear RTU, Taylor correction: C_t = ∂F/∂S · C_{t-1} + ∂F/∂θ · Δθ_t, credit through S + C]
               out = W_o y + b_o, or W_o f(LayerNorm(W_h y + b_h)) + b_o with a hidden head block
    backward   every dθ into one flat gradient row per member (RTRL credit dc¹ Re S + dc² Im S for the RTU),
               each row followed at once by its member's update, while the row is in cache:
    ObGD       e ← γλ e + g,  α' from ‖e‖₁,  θ ← θ + α' δ e
    QRC        z ← γλ z + g,  u = -b (γc g' - g) + δ z - h g [- β θ],  θ ← θ + α min(1, clip / ‖u‖) u
    QRC's ε-greedy choice (``qrc_choose``) and its TD error, bias trace and update coefficients (``qrc_targets``)
    are one call each too: as small tensor operations they cost the single agent more than the networks' loops.

The same equations as ``rtu_core.engines.fused`` and ``rtu_core.cells.rtu`` (``docs/method.md`` §2, §4), tested equal to
autograd in float64. Every member is computed on its own in a fixed order, so a population member equals its solo
run bit for bit, and runs repeat exactly.

The extension is built when the package is installed (``setup.py``, run by ``make``) and imported from there. Where
that build is missing or was made from another version of the source, it is built at the first run instead (about
a minute, said on stderr; cached by torch under ``~/.cache/torch_extensions`` in a folder named by the source's
digest, so a running process never sees another version's library). Builders take a lock that the system drops when
a builder dies, so torch's own ``lock`` file left by a killed build is known stale and removed, never waited on.
Where no compiler is available the agents use the PyTorch step, and say so once.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from pathlib import Path

import torch
from torch import Tensor

ACTIVATION_CODES = {"leaky_relu": 0, "tanh": 1, "relu": 2}
SOURCE = Path(__file__).with_name("rtu_rtrl.cpp")
CFLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fopenmp-simd"]  # setup.py's too: the same numbers
JIT_ONLY = "RTU_NATIVE_JIT"  # set (tests): ignore the install-time build, build at run time as without one
_lock = threading.Lock()
_module = None
_failure: str | None = None


def say(message: str) -> None:
    """One line on stderr: what the native step is doing, where a run would otherwise wait without a word."""
    print(f"rtu_core: {message}", file=sys.stderr, flush=True)


def source_digest() -> str:
    """The first 12 hex digits of the source's SHA-256: the version a build was made from."""
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]


def installed():
    """The install-time build (``setup.py``) when it was made from the current source, else None."""
    if os.environ.get(JIT_ONLY):
        return None
    try:
        from . import _rtu_rtrl
    except ImportError:
        return None
    return _rtu_rtrl if getattr(_rtu_rtrl, "source_digest", "") == source_digest() else None


def _jit_name() -> str:
    return f"rtu_rtrl_native_{source_digest()}"


def ready() -> bool:
    """Whether ``load()`` will not compile: the install-time build is current, or the run-time build is cached."""
    if _module is not None or installed() is not None:
        return True
    from torch.utils import cpp_extension

    return any(Path(cpp_extension._get_build_directory(_jit_name(), verbose=False)).glob("*.so"))


def load():
    """The compiled extension: the install-time build, or one built now (once per source version and machine)."""
    global _module, _failure
    with _lock:
        if _module is None and _failure is None:
            _module = installed()
            if _module is None:
                try:
                    _module = _build()
                except Exception as error:  # no compiler or ninja: the PyTorch step still works
                    detail = str(error).strip().splitlines()[-1] if str(error).strip() else ""
                    _failure = f"{type(error).__name__}: {detail}"
                    say(f"the native step could not be built ({_failure}); the PyTorch step runs instead")
    if _module is None:
        raise RuntimeError(f"the native RTU-RTRL step could not be built ({_failure})")
    return _module


def _build():
    """Build (or load from torch's cache) the extension at run time, under a lock the system drops when its holder
    dies: torch's own ``lock`` file, which torch waits on forever when a killed build left it, is then stale."""
    import fcntl

    from torch.utils import cpp_extension

    # the ninja that pip installed beside this Python (the project's dependency), if no system one
    scripts = str(Path(sys.executable).parent)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), scripts])
    name = _jit_name()
    build = Path(cpp_extension._get_build_directory(name, verbose=False))
    with open(build / "rtu_build.flock", "w") as held:
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another process that is building the native step...")
            fcntl.flock(held, fcntl.LOCK_EX)
        stale = build / "lock"
        if stale.exists():  # every builder holds the flock while building: this one's builder died mid-way
            say("removing the lock file of an interrupted build of the native step")
            stale.unlink()
        if not any(build.glob("*.so")):
            say("building the native step, once, about a minute (`make` builds it when installing)...")
        return cpp_extension.load(name=name, sources=[str(SOURCE)], extra_cflags=CFLAGS, verbose=False)


def available() -> bool:
    try:
        load()
        return True
    except RuntimeError:
        return False


def flatten_parameters(params: list[Tensor], population: bool = True) -> Tensor:
    """One contiguous (P, N) buffer holding every parameter (each of shape (P, ...)) in order; each parameter
    becomes a view of its columns, so the optimisers, the eager code and the native loops share the values.
    With ``population=False`` the parameters are one network's (no population axis): a (1, N) buffer."""
    P = params[0].shape[0] if population else 1
    sizes = [p.numel() // P for p in params]
    flat = params[0].new_empty(P, sum(sizes))
    offset = 0
    with torch.no_grad():
        for p, size in zip(params, sizes):
            flat[:, offset : offset + size] = p.reshape(P, size)
            p.data = flat[:, offset : offset + size].view(p.shape)
            offset += size
    return flat


def head_width(net) -> int:
    """The width of the head's hidden block (0: a linear read-out)."""
    return 0 if net.head_hidden is None else net.head_hidden.weight.shape[-2]


class _NativeRunner:
    """What both native runners share: the compiled module and the flat parameter row, whose in-place changes torch
    must be told of."""

    # not in a checkpoint: the row and its views hold the network's parameters, which the network's own state restores
    checkpoint_skip: tuple[str, ...] = ("module", "flat", "views")
    flat: Tensor
    views: tuple[Tensor, ...]  # the network's parameters, each a view of ``flat``

    def changed(self) -> None:
        """Tell torch the parameters changed in place: the flat row and every parameter view of it (a view made by
        assigning ``.data`` keeps a version counter of its own, and the RTU's cached coefficients, which the eager
        replay, staleness measure and refresh read, are keyed by the parameter's version)."""
        torch.autograd.graph.increment_version([self.flat, *self.views])


class NativeNetwork(_NativeRunner):
    """A ``MemoryNetwork`` (RTU, RTRL or TBPTT(1)) run by the native loops over its flat parameter row.

    TBPTT(1) is RTRL with the previous sensitivities taken as zero: S_t = D_t J_t, so every gradient reaches the
    current step only, exactly as backpropagating through one step from the detached carried state.

    ``flat`` must be the buffer whose leading columns are the network's parameters (``flatten_parameters``); the
    row may continue with other parameters of the same optimiser (a Gaussian log-std)."""

    # caches, made again at the first step after a resume
    checkpoint_skip = (*_NativeRunner.checkpoint_skip, "_pairs_of", "_pairs_views", "_memory_of", "_hidden_view")
    checkpoint_skip += ("_coeffs", "_coeffs_key")
    _pairs_of: tuple[Tensor, ...] = ()  # the sensitivity tensors the cached real views are of
    _memory_of = None  # the memory whose real views are cached
    _coeffs_key = None  # the parameters' versions the cached RTU coefficients were computed at

    @property
    def shape(self) -> tuple:
        """The layout arguments of every native call."""
        return self.dims, self.n, self.out_size, self.head_width

    def __init__(self, net, flat: Tensor, single: bool = False):
        if not supports(net, single):
            raise ValueError(
                "the native step runs RTU networks with a tanh output (the Taylor correction: the linear RTU)"
            )
        self.net, self.flat, self.views = net, flat, tuple(net.parameters())
        self.dims = [net.features[0].weight.shape[-1]] + [layer.weight.shape[-2] for layer in net.features]
        self.n, self.out_size, self.head_width = net.cell.hidden_size, net.head.weight.shape[-2], head_width(net)
        self.activation, self.nonlinear = ACTIVATION_CODES[net.activation_name], net.cell.nonlinear
        # a single network (``single``: batched PPO's rollout) carries the real pair [c¹ | c²], as TBPTT(1) does
        self.truncate = net.mode == "tbptt" or single
        if self.truncate:  # the one-step sensitivities D_t J_t, written by forward and read by backward
            zero = net.cell.initial_rtrl_state()
            self._scratch = tuple(torch.view_as_real(torch.zeros_like(s)) for s in zero[1:5])
        self.taylor = net.taylor
        if self.taylor:  # the RTU's parameters at each member's previous advance, for Δθ_t = θ_t - θ_{t-1}
            start = net.cell.nu_log.storage_offset() - flat.storage_offset()
            self.previous = flat[:, start : start + 2 * self.n + 2 * self.n * self.dims[-1]].clone()
        self.module = load()

    def forward(self, obs: Tensor, memory, advance: bool):
        """(out_t, memory_t, tape) from o_t and the memory of step t-1. With ``advance`` the sensitivities are
        advanced in place (the memory's own tensors; in mode tbptt a scratch buffer holding D_t J_t, the one-step
        sensitivities); without, only the output is computed (memory unchanged)."""
        hidden, pairs = self._views(memory)
        tape = self.module.network_forward(
            self.flat,
            *self.shape,
            self._coefficients(),
            obs.contiguous(),
            hidden,
            *pairs[:4],
            self.activation,
            self.nonlinear,
            advance,
            self.truncate,
            [*pairs[4:], self.previous] if self.taylor else [],
        )
        if advance:
            memory = self._with_hidden(memory, tape[1])
        return tape[0], memory, (tape, hidden)

    def recur(self, obs: Tensor, memory) -> tuple[Tensor, object]:
        """(out_t, memory_t) with only h_t advanced: the sensitivities (and corrections) are left as they were, for
        acting without learning (evaluation)."""
        out, _, (tape, _) = self.forward(obs, memory, advance=False)
        return out, self._with_hidden(memory, tape[1])

    def _with_hidden(self, memory, hidden: Tensor):
        """The memory with the new hidden state ``hidden`` (P, n, 2) (the sensitivities are the memory's own)."""
        if self.truncate:
            return torch.cat(hidden.unbind(-1), dim=-1)
        memory = type(memory)(torch.view_as_complex(hidden), *memory[1:])
        self._memory_of, self._hidden_view = memory, hidden  # its sensitivities' views are the cached ones
        return memory

    def backward(
        self, grad: Tensor, grad_out: Tensor, tape, memory, next_step: bool = False, update=None, defer: bool = False
    ):
        """Write d(grad_out · out_t)/dθ into ``grad`` (shaped like ``flat``): RTRL credit through the memory's
        sensitivities (``next_step``: through the sensitivities one step further, for a forward pass run without
        ``advance``; in mode tbptt through the one step alone). With ``update`` (``module.obgd_update`` or
        ``module.qrc_update``) each member's row of ``flat`` is updated from its gradient row as soon as that row is
        computed, while it is in cache; a QRC(λ) update without clipping updates the linear RTU's B block element by
        element as its gradient (and Q's next-step gradient) is formed, so that block of ``grad`` is not written.
        With ``defer`` nothing runs yet: the pass is returned, bound to its
        arguments, for a QRC update to run member by member as its ``prior``."""
        tape, hidden_prev = tape
        pairs = self._views(memory)[1]
        args = (self.flat, *self.shape, self._coefficients(), grad, grad_out.contiguous(), tape, hidden_prev)
        args += (*pairs[:4], self.activation, self.nonlinear, next_step, self.truncate)
        if defer:
            return self.module.network_backward_pass(*args, list(pairs[4:]))
        self.module.network_backward(*args, update, list(pairs[4:]))

    def _coefficients(self) -> Tensor:
        """Every member's RTU coefficients (P, 6n: e^ν, θ, r cos θ, r sin θ, γ, dγ/dν), computed again only when the
        parameters have changed since: when the version counters of the flat row or of a parameter view have moved
        (``changed`` moves them after each native update; any in-place change by torch moves them itself)."""
        key = (self.flat._version, *(view._version for view in self.views))
        if key != self._coeffs_key:
            self._coeffs, self._coeffs_key = self.module.rtu_coefficients(self.flat, *self.shape), key
        return self._coeffs

    def _views(self, memory) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The memory's hidden state (P, n, 2) and its sensitivities (then, with the Taylor correction, the
        corrections C) as real (re, im) views. The sensitivities' views are remembered while the memory holds the
        same tensors (advanced in place, they stay the same objects from step to step; holding them here keeps their
        ids from being reused); the memory this runner last returned is answered without looking (a few µs a call).
        In mode tbptt: the carried real pair [c¹ | c²] (P, 2n) stacked, and the scratch one-step sensitivities."""
        if self.truncate:
            return torch.stack(memory.chunk(2, dim=-1), dim=-1), self._scratch
        if memory is not self._memory_of:
            tensors = memory[1:]
            if len(tensors) != len(self._pairs_of) or any(a is not b for a, b in zip(tensors, self._pairs_of)):
                self._pairs_of, self._pairs_views = tuple(tensors), tuple(torch.view_as_real(s) for s in tensors)
            self._memory_of, self._hidden_view = memory, torch.view_as_real(memory.hidden)
        return self._hidden_view, self._pairs_views


class NativeCellNetwork(_NativeRunner):
    """A ``MemoryNetwork`` with a GRU or FFN cell (TBPTT(1)) run by the native loops: the same
    interface as ``NativeNetwork``; its memory is the carried GRU state (P, H) (FFN: (P, 0)), detached.

        GRU   r = σ(W_ir x + b_ir + W_hr h + b_hr),  z = σ(W_iz x + b_iz + W_hz h + b_hz),
              c = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),  h' = (1 - z) ⊙ c + z ⊙ h,   y = h'
        FFN   y = x"""

    def __init__(self, net, flat: Tensor, single: bool = False):
        from ...cells import GRU

        if not supports(net, single):
            raise ValueError("the native step runs population networks on the CPU")
        self.net, self.flat, self.views = net, flat, tuple(net.parameters())
        self.dims = [net.features[0].weight.shape[-1]] + [layer.weight.shape[-2] for layer in net.features]
        self.kind = 1 if isinstance(net.cell, GRU) else 0
        self.hidden_size = net.cell.hidden_size if self.kind else 0
        self.out_size, self.head_width = net.head.weight.shape[-2], head_width(net)
        self.activation = ACTIVATION_CODES[net.activation_name]
        self.module = load()

    @property
    def shape(self) -> tuple:
        """The layout arguments of every native call."""
        return self.dims, self.kind, self.hidden_size, self.out_size, self.head_width

    def forward(self, obs: Tensor, memory: Tensor, advance: bool):
        """(out_t, memory_t, tape) from o_t and the carried state of step t-1 (unchanged without ``advance``)."""
        hidden = memory.to(self.flat.dtype).contiguous()
        tape = self.module.cell_forward(self.flat, *self.shape, obs.contiguous(), hidden, self.activation)
        return tape[0], (tape[1] if advance else memory), (tape, hidden)

    def recur(self, obs: Tensor, memory: Tensor) -> tuple[Tensor, Tensor]:
        """(out_t, memory_t): the carried state is all these networks keep."""
        return self.forward(obs, memory, advance=True)[:2]

    def backward(
        self, grad: Tensor, grad_out: Tensor, tape, memory, next_step: bool = False, update=None, defer: bool = False
    ):
        """Write d(grad_out · out_t)/dθ through the one step of ``tape`` into ``grad`` (the memory and ``next_step``
        do not matter: every gradient starts at the detached state the forward pass read); ``update`` and ``defer``
        as ``NativeNetwork.backward``'s (a QRC(λ) update without clipping updates the GRU's W_ih and W_hh as their
        gradients are formed, leaving them out of ``grad``)."""
        tape, hidden_prev = tape
        args = (self.flat, *self.shape, grad, grad_out.contiguous(), tape, hidden_prev, self.activation)
        if defer:
            return self.module.cell_backward_pass(*args)
        self.module.cell_backward(*args, update)


def network(net, flat: Tensor, single: bool = False) -> NativeNetwork | NativeCellNetwork:
    """The native runner of ``net`` over its flat parameter row: ``NativeNetwork`` for the RTU, else
    ``NativeCellNetwork``. With ``single``, ``net`` is one network without a population axis (``flat`` (1, N)),
    run for its forward pass alone (``recur``) on one row: its memory is the carried vector (the RTU's real pair
    [Re h | Im h]), without sensitivities. Batched PPO's rollout of one environment runs so."""
    from ...cells import RTU

    runner = NativeNetwork if isinstance(net.cell, RTU) else NativeCellNetwork
    return runner(net, flat, single)


def supports(net, single: bool = False) -> bool:
    """Whether the native step can run ``net``: the RTU (RTRL, or TBPTT(1) through one-step sensitivities; the
    Taylor correction for the linear RTU; tanh output), the GRU or the FFN (TBPTT(1)), with a linear head or one
    hidden head block, on the CPU; a population network, or with ``single`` one network for its forward pass."""
    from ...cells import RTU

    return (
        (
            not isinstance(net.cell, RTU)
            or (net.cell.output_activation == "tanh" and not (net.taylor and net.cell.nonlinear))
        )
        and (net.population is not None or single)
        and net.head.weight.device.type == "cpu"
    )
