"""Fixtures of the server contract suite.

A test that takes ``server_argv`` runs once for every strategy in ``servers.STRATEGIES``
and every argument variant of that strategy in ``VARIANTS`` (default: one run with no
extra arguments). A strategy added to the registry gets the whole suite with no change
here; to run it under several settings, add one line, e.g.::

    "goroutine": [["--procs", "1"], ["--procs", "2"]],

``launch(argv)`` starts ``python -m servers *argv``, waits for the listening line and
kills the server's whole process tree when the test ends, whatever happened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from servers import STRATEGIES
from tests.servers.support import ServerProcess, start_server

VARIANTS: dict[str, list[list[str]]] = {
    # strategy -> extra-argument lists; the suite runs once per list.
    "goroutine": [["--procs", "1"], ["--procs", "2"]],
}


def all_server_argvs() -> list[list[str]]:
    return [[name, *extra] for name in STRATEGIES for extra in VARIANTS.get(name, [[]])]


def _argv_id(argv: list[str]) -> str:
    return "-".join(a.lstrip("-") for a in argv)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "server_argv" in metafunc.fixturenames:
        argvs = all_server_argvs()
        metafunc.parametrize("server_argv", argvs, ids=[_argv_id(a) for a in argvs])


@pytest.fixture
def launch(tmp_path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def _launch(argv: list[str]) -> ServerProcess:
        server = start_server(argv, tmp_path / f"stderr-{len(started)}.txt")
        started.append(server)
        return server

    yield _launch
    for server in started:
        server.kill()


@pytest.fixture
def server(launch, server_argv) -> ServerProcess:
    """The server under test, started with ``--port 0``."""
    return launch([*server_argv, "--port", "0"])
