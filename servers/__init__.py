"""Per-strategy echo servers behind one interface (see DESIGN.md, "Server contract").

``STRATEGIES`` maps a strategy name to its :class:`servers.base.Server` subclass. Adding a
strategy is one line in ``_SPECS``. A module is imported on first lookup, so
``python -m servers fork`` does not carry asyncio (or the goroutine runtime) into the
parent whose pages every child shares.

Every strategy is of one kind, read without importing any server module:

* ``MODELS`` -- the subject: iterative, fork, thread, goroutine.
* ``REFERENCES`` -- the yardstick, what a Python user would run instead: asyncio,
  asyncio-streams, gevent, uvloop.

``unavailable(name)`` says why a strategy cannot run here (``uvloop`` without the
``peers`` extra), or ``None``; such a strategy is still listed, and ``python -m servers``
refuses it with that reason.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from servers.base import Server

MODEL = "model"
REFERENCE = "reference"

_SPECS = {
    "iterative": ("servers.iterative:IterativeServer", MODEL),
    "fork": ("servers.fork:ForkServer", MODEL),
    "thread": ("servers.thread:ThreadServer", MODEL),
    "goroutine": ("servers.goroutine:GoroutineServer", MODEL),
    "asyncio": ("servers.asyncio_server:AsyncioServer", REFERENCE),
    "asyncio-streams": ("servers.asyncio_streams:StreamsServer", REFERENCE),
    "gevent": ("servers.gevent_server:GeventServer", REFERENCE),
    "uvloop": ("servers.uvloop_server:UvloopServer", REFERENCE),
}


class _Registry(Mapping[str, type[Server]]):
    def __getitem__(self, name: str) -> type[Server]:
        module, _, cls = _SPECS[name][0].partition(":")
        return getattr(importlib.import_module(module), cls)

    def __iter__(self) -> Iterator[str]:
        return iter(_SPECS)

    def __len__(self) -> int:
        return len(_SPECS)


STRATEGIES: Mapping[str, type[Server]] = _Registry()
MODELS: tuple[str, ...] = tuple(name for name, (_, kind) in _SPECS.items() if kind == MODEL)
REFERENCES: tuple[str, ...] = tuple(
    name for name, (_, kind) in _SPECS.items() if kind == REFERENCE
)


def kind(name: str) -> str:
    """``MODEL`` or ``REFERENCE``; ``KeyError`` for a name that is not a strategy."""
    return _SPECS[name][1]


def unavailable(name: str) -> str | None:
    """Why strategy ``name`` cannot run in this interpreter, or ``None`` when it can."""
    return STRATEGIES[name].unavailable()


__all__ = [
    "MODEL", "MODELS", "REFERENCE", "REFERENCES", "STRATEGIES", "Server", "kind", "unavailable",
]
