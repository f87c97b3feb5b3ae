"""Per-strategy echo servers behind one interface (see DESIGN.md, "Server contract").

``STRATEGIES`` maps a strategy name to its :class:`servers.base.Server` subclass. Adding a
strategy is one line in ``_SPECS``. A module is imported on first lookup, so
``python -m servers fork`` does not carry asyncio (or the goroutine runtime) into the
parent whose pages every child shares.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from servers.base import Server

_SPECS = {
    "iterative": "servers.iterative:IterativeServer",
    "fork": "servers.fork:ForkServer",
    "thread": "servers.thread:ThreadServer",
    "goroutine": "servers.goroutine:GoroutineServer",
    "asyncio": "servers.asyncio_server:AsyncioServer",
}


class _Registry(Mapping[str, type[Server]]):
    def __getitem__(self, name: str) -> type[Server]:
        module, _, cls = _SPECS[name].partition(":")
        return getattr(importlib.import_module(module), cls)

    def __iter__(self) -> Iterator[str]:
        return iter(_SPECS)

    def __len__(self) -> int:
        return len(_SPECS)


STRATEGIES: Mapping[str, type[Server]] = _Registry()

__all__ = ["STRATEGIES", "Server"]
