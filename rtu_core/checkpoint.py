"""Checkpoints as versioned plain data: opening one runs no code.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts, written by ``torch.save`` and read by
``torch.load(path, weights_only=True)``, which refuses anything else. It holds the format version, the run's config
(each member's), the loop's counters and the state of everything the run owns: each network's parameters, traces and
memories, optimiser and normaliser statistics, random-generator states, the environments' states (MuJoCo's
integration state by ``mj_getState``) and the recorder's episodes.

Saving walks an object's attributes (``state_of``); loading rebuilds the run from its config exactly as a fresh run
is built, then writes the saved values into it in place (``restore``), so parameters stay views of the flat buffers
the engines step, and traces stay views of theirs. Only the classes in ``REBUILT`` (plain event records) are ever
constructed from a file, with the saved numbers as their fields; every other object is one the fresh run built.

One loader per format: ``FORMAT`` is this one; a file of another (the pickled checkpoints before it) is a one-line
error.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import os
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError
from .events import EpisodeEnd, EvaluationEnd, MemberEnd

FORMAT = 2  # 1: the pickled Run (before plain data), never opened
REBUILT = {cls.__name__: cls for cls in (EpisodeEnd, EvaluationEnd, MemberEnd)}
# constant or derived from the config: a fresh run builds them the same way, so they are neither saved nor restored
SKIPPED = (
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
    types.ModuleType,
    type,
    torch.device,
    torch.dtype,
    np.dtype,
)
SKIPPED_NAMES = {"TrainConfig", "Engine", "EnvSpec", "MjModel", "partial"}


def _skipped(value) -> bool:
    return isinstance(value, SKIPPED) or type(value).__name__ in SKIPPED_NAMES


def state_of(value, path: str = "run", seen: set | None = None):
    """``value`` as plain data (see the module docstring); raises TypeError naming the path of anything that is
    neither plain nor an object with attributes."""
    seen = set() if seen is None else seen
    if isinstance(value, enum.Enum):  # before the plain types: an IntEnum is an int too
        return {"__enum__": type(value).__name__, "name": value.name}
    if isinstance(value, np.generic):  # before the plain types: a NumPy float64 is a float too
        return {"__npscalar__": torch.from_numpy(np.asarray(value).reshape(1)), "dtype": str(value.dtype)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):  # a copy: torch.save refuses complex tensors beside real views of them
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "USO":  # strings (a card deck's suits); Python objects only where they are plain
            items = value.tolist()
            if value.dtype.kind == "O" and not all(isinstance(v, (bool, int, float, str)) for v in value.flat):
                raise TypeError(f"cannot checkpoint {path}: a NumPy array of Python objects")
            return {"__textarray__": items, "dtype": value.dtype.str}
        return {"__ndarray__": torch.from_numpy(value.copy())}
    if isinstance(value, np.random.Generator):
        return {"__npgen__": value.bit_generator.state}
    if isinstance(value, torch.Generator):
        return {"__torchgen__": value.get_state()}
    if _skipped(value):
        return {"__skip__": True}
    if isinstance(value, collections.deque):
        return {"__deque__": [state_of(v, f"{path}[{i}]", seen) for i, v in enumerate(value)], "maxlen": value.maxlen}
    if isinstance(value, (set, frozenset)):
        return {"__set__": sorted(state_of(v, path, seen) for v in value)}
    if isinstance(value, tuple) and hasattr(type(value), "_fields"):  # a named tuple (an RTRL state)
        items = [state_of(v, f"{path}.{k}", seen) for k, v in zip(value._fields, value)]
        return {"__namedtuple__": type(value).__name__, "items": items}
    if isinstance(value, (list, tuple)):
        items = [state_of(v, f"{path}[{i}]", seen) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, (str, int)):
                raise TypeError(f"cannot checkpoint {path}: a dict keyed by {type(key).__name__}")
        # NumPy keys as Python's (equal, with the same hash: a lookup finds them)
        return {"__dict__": {_plain_key(k): state_of(v, f"{path}.{k}", seen) for k, v in value.items()}}
    if id(value) in seen:  # saved where first met
        return {"__seen__": True}
    seen.add(id(value))
    if type(value).__module__.startswith("mujoco") and type(value).__name__ == "MjData":
        return {"__mjdata__": _mujoco_state(value)}
    if isinstance(value, torch.optim.Optimizer):
        return _optimizer_state(value, path, seen)
    attributes = getattr(value, "__dict__", None)
    if attributes is None:
        raise TypeError(f"cannot checkpoint {path}: a {type(value).__name__} has no attributes to save")
    skip = getattr(type(value), "checkpoint_skip", ())
    return {
        "__object__": type(value).__name__,
        "attrs": {k: state_of(v, f"{path}.{k}", seen) for k, v in attributes.items() if k not in skip},
    }


def _plain_key(key):
    return key.item() if isinstance(key, np.generic) else key


def restore(current, saved, path: str = "run"):
    """Write ``saved`` (from ``state_of``) into ``current`` (the same thing in a freshly built run), in place where it
    can be; returns the restored value (``current`` itself wherever it was restored in place)."""
    if saved is None or isinstance(saved, (bool, int, float, str)):
        return saved
    if isinstance(saved, torch.Tensor):
        if isinstance(current, torch.Tensor) and current.shape == saved.shape and current.dtype == saved.dtype:
            with torch.no_grad():
                current.copy_(saved)
            return current
        if isinstance(current, torch.nn.Parameter):
            raise ConfigError(f"checkpoint {path}: shape {tuple(saved.shape)} where the run has {tuple(current.shape)}")
        return saved.to(current.device) if isinstance(current, torch.Tensor) else saved
    if isinstance(saved, list):
        if isinstance(current, list) and len(current) == len(saved):
            current[:] = [restore(c, s, f"{path}[{i}]") for i, (c, s) in enumerate(zip(current, saved))]
            return current
        return [restore(None, s, f"{path}[{i}]") for i, s in enumerate(saved)]
    if isinstance(saved, tuple):
        olds = current if isinstance(current, tuple) and len(current) == len(saved) else (None,) * len(saved)
        return tuple(restore(c, s, f"{path}[{i}]") for i, (c, s) in enumerate(zip(olds, saved)))
    if not isinstance(saved, dict):
        raise ConfigError(f"checkpoint {path}: unexpected {type(saved).__name__}")
    if "__skip__" in saved or "__seen__" in saved:
        return current
    if "__ndarray__" in saved:
        array = saved["__ndarray__"].numpy().copy()
        if isinstance(current, np.ndarray) and current.shape == array.shape and current.dtype == array.dtype:
            current[...] = array
            return current
        return array
    if "__textarray__" in saved:
        return np.array(saved["__textarray__"], dtype=np.dtype(saved["dtype"]))
    if "__npscalar__" in saved:
        return saved["__npscalar__"].numpy().astype(saved["dtype"])[0]
    if "__npgen__" in saved:
        state = saved["__npgen__"]
        if not isinstance(current, np.random.Generator):
            current = np.random.Generator(getattr(np.random, state["bit_generator"])())
        current.bit_generator.state = state
        return current
    if "__torchgen__" in saved:
        current = current if isinstance(current, torch.Generator) else torch.Generator()
        current.set_state(saved["__torchgen__"])
        return current
    if "__enum__" in saved:
        if type(current).__name__ != saved["__enum__"]:
            raise _mismatch(path, saved["__enum__"], current)
        return type(current)[saved["name"]]
    if "__namedtuple__" in saved:
        if type(current).__name__ != saved["__namedtuple__"]:
            raise _mismatch(path, saved["__namedtuple__"], current)
        items = [restore(c, s, f"{path}[{i}]") for i, (c, s) in enumerate(zip(current, saved["items"]))]
        return type(current)._make(items)
    if "__set__" in saved:
        return set(saved["__set__"])
    if "__deque__" in saved:
        return collections.deque([restore(None, s, path) for s in saved["__deque__"]], maxlen=saved["maxlen"])
    if "__dict__" in saved:
        items = saved["__dict__"]
        current = current if isinstance(current, dict) else {}
        for key in [k for k in current if k not in items]:
            del current[key]
        for key, value in items.items():
            current[key] = restore(current.get(key), value, f"{path}.{key}")
        return current
    if "__mjdata__" in saved:
        _set_mujoco_state(current, saved["__mjdata__"])
        return current
    if "__optimizer__" in saved:
        _restore_optimizer(current, saved, path)
        return current
    if "__object__" in saved:
        return _restore_object(current, saved, path)
    raise ConfigError(f"checkpoint {path}: unknown entry {sorted(saved)[:3]}")


def _mismatch(path: str, name: str, current) -> ConfigError:
    found = "nothing" if current is None else f"a {type(current).__name__}"
    return ConfigError(f"checkpoint {path}: holds a {name} where the run has {found}")


def _restore_object(current, saved: dict, path: str):
    name, attributes = saved["__object__"], saved["attrs"]
    if current is None and name in REBUILT:
        cls = REBUILT[name]
        return cls(**{f.name: restore(None, attributes[f.name], path) for f in dataclasses.fields(cls)})
    # (an agent's engine subclass takes what its rule's class saved: ``agents.agent_class``)
    if current is None or name not in {cls.__name__ for cls in type(current).__mro__}:
        raise _mismatch(path, name, current)
    own = current.__dict__
    for key, value in attributes.items():
        own[key] = restore(own.get(key), value, f"{path}.{key}")
    return current


def _optimizer_state(optimizer: torch.optim.Optimizer, path: str, seen: set) -> dict:
    """A torch optimiser: its per-parameter state in parameter order, its groups' settings, its own attributes."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    own = {k: v for k, v in optimizer.__dict__.items() if k not in ("state", "param_groups", "defaults")}
    return {
        "__optimizer__": type(optimizer).__name__,
        "state": [state_of(dict(optimizer.state.get(p, {})), f"{path}.state[{i}]", seen) for i, p in enumerate(params)],
        "groups": [state_of({k: v for k, v in g.items() if k != "params"}, path, seen) for g in optimizer.param_groups],
        "attrs": {k: state_of(v, f"{path}.{k}", seen) for k, v in own.items()},
    }


def _restore_optimizer(optimizer: torch.optim.Optimizer, saved: dict, path: str) -> None:
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if len(params) != len(saved["state"]):
        raise ConfigError(f"checkpoint {path}: {len(saved['state'])} parameters where the run has {len(params)}")
    for i, (p, state) in enumerate(zip(params, saved["state"])):
        restored = restore(dict(optimizer.state[p]) if p in optimizer.state else None, state, f"{path}.state[{i}]")
        optimizer.state[p].update(restored)
    for group, settings in zip(optimizer.param_groups, saved["groups"]):
        group.update(restore(None, settings, path))
    for key, value in saved["attrs"].items():
        optimizer.__dict__[key] = restore(optimizer.__dict__.get(key), value, f"{path}.{key}")


def _mujoco_state(data) -> dict:
    """MuJoCo's integration state (``mj_getState``: time, qpos, qvel, act, warm start, controls, applied forces), and
    every array of ``MjData`` as it stands: the quantities derived at the last step's start, which an environment reads
    before its next step (Ant's position before the step is ``xpos``, one integration behind ``qpos``)."""
    import mujoco

    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(data.model, spec))
    mujoco.mj_getState(data.model, data, state, spec)
    arrays = {name: getattr(data, name) for name in dir(data) if not name.startswith("_")}
    arrays = {name: torch.from_numpy(a.copy()) for name, a in arrays.items() if isinstance(a, np.ndarray)}
    return {"integration": torch.from_numpy(state), "arrays": arrays}


def _set_mujoco_state(data, saved: dict) -> None:
    import mujoco

    for name, array in saved["arrays"].items():
        target = getattr(data, name, None)
        if isinstance(target, np.ndarray) and target.shape == tuple(array.shape):  # the contact buffers may differ
            target[...] = array.numpy()
    state = saved["integration"].numpy()
    mujoco.mj_setState(data.model, data, state, mujoco.mjtState.mjSTATE_INTEGRATION)


def save(path: Path, content: dict) -> None:
    """Write ``content`` (plain data: ``state_of`` what is not) to ``path`` atomically: a reader sees the old
    checkpoint or the new one."""
    _check_plain(content, "checkpoint")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"format": FORMAT, **content}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_plain(value, path: str) -> None:
    """Raise TypeError naming the first value ``torch.load(weights_only=True)`` would refuse."""
    if type(value) in (dict, list, tuple):
        for key, item in value.items() if type(value) is dict else enumerate(value):
            if type(value) is dict and type(key) not in (str, int):
                raise TypeError(f"cannot checkpoint {path}: a key of type {type(key).__name__}")
            _check_plain(item, f"{path}.{key}")
    elif not (value is None or type(value) in (bool, int, float, str) or isinstance(value, torch.Tensor)):
        raise TypeError(f"cannot checkpoint {path}: a {type(value).__name__}")


def load(path: Path) -> dict:
    """The plain data ``save`` wrote, opened with ``weights_only=True`` (no code runs). A file that does not open, or
    holds another format, is a one-line ConfigError naming it."""
    try:
        content = torch.load(path, weights_only=True)
    except Exception as error:
        if "weights_only" in str(error) or "Unsupported global" in str(error):
            reason = "written by an earlier version as pickled objects, which are not opened"
        else:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        message = f"{path} is not a readable checkpoint ({reason}); delete it to start that run again"
        raise ConfigError(message) from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        found = content.get("format") if isinstance(content, dict) else None
        raise ConfigError(
            f"{path} is a checkpoint of format {found}, this version reads format {FORMAT}; delete it to start that "
            "run again"
        )
    return content
