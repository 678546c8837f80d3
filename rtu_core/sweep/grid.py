"""A sweep's grid: a base config, axes (any ``TrainConfig`` field, or ``method`` = a (cell, mode) pair of
``config.METHODS``) and a number of seeds; every grid point x seed is one named solo run."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

from ..config import METHODS, ConfigError, TrainConfig, field_type

CONFIG_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


@dataclass(frozen=True)
class Grid:
    """The runs of a sweep: base config values, the axes varied over (in order) and the seeds per point."""

    base: dict
    axes: dict[str, list]
    seeds: int = 1

    def __post_init__(self):
        for name, values in self.axes.items():
            if name != "method" and name not in CONFIG_FIELDS or name in ("seed", "population"):
                raise ConfigError(f"cannot sweep over {name!r} (a TrainConfig field or 'method'; seeds via --seeds)")
            if not values:
                raise ConfigError(f"axis {name} has no values")
            if name == "method":
                unknown = [v for v in values if v not in METHODS]
                if unknown:
                    raise ConfigError(f"unknown method {unknown[0]!r} (choose from {', '.join(METHODS)})")
        if self.seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {self.seeds}")

    def points(self) -> list[dict]:
        """Each grid point as {axis: value}, in the axes' order."""
        names = list(self.axes)
        return [dict(zip(names, values)) for values in itertools.product(*self.axes.values())]

    def runs(self) -> list[tuple[str, TrainConfig]]:
        """(name, solo config) of every grid point and seed; an invalid point is a one-line ConfigError."""
        runs = []
        for point in self.points():
            values = dict(self.base)
            for name, value in point.items():
                if name == "method":
                    values["cell"], values["mode"] = METHODS[value]
                else:
                    values[name] = value
            for k in range(self.seeds):
                values["seed"] = self.base.get("seed", 0) + k
                try:
                    config = TrainConfig(**{**values, "population": 1})
                except ConfigError as error:
                    raise ConfigError(f"grid point {point_name(point)}: {error}") from None
                runs.append((point_name({**point, "seed": values["seed"]}), config))
        return runs

    def to_dict(self) -> dict:
        return {"base": self.base, "axes": self.axes, "seeds": self.seeds}


def point_name(point: dict) -> str:
    """A run's folder name: ``chain_length=16,method=rtu-rtrl,seed=3``."""
    return ",".join(f"{name}={value}" for name, value in point.items())


def parse_axis(text: str) -> tuple[str, list]:
    """``chain_length=2,4,8`` -> ("chain_length", [2, 4, 8]), values typed like the field."""
    name, sep, values = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not values:
        raise ConfigError(f"--grid {text!r}: expected NAME=V1,V2,...")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if name == "method" or name not in CONFIG_FIELDS:
        return name, items
    kind = field_type(name)
    try:
        if kind is bool:
            parsed = [{"true": True, "false": False}[v.lower()] for v in items]
        else:
            parsed = [kind(v) for v in items]
    except (ValueError, KeyError):
        raise ConfigError(f"--grid {name}: values must be {kind.__name__}, got {values!r}") from None
    return name, parsed
