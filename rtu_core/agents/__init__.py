"""Streaming agents (batch size 1 per member, one update per environment step, no replay)."""

from .qrc import QRC
from .stream_ac import StreamAC

AGENTS = {"stream_ac": StreamAC, "qrc": QRC}

__all__ = ["AGENTS", "QRC", "StreamAC"]
