"""Fixtures of the server contract suite.

A test that takes ``server_argv`` runs once for every strategy in ``servers.STRATEGIES``
and every argument variant of that strategy in ``VARIANTS`` (default: one run with no
extra arguments). A strategy added to the registry gets the whole suite with no change
here; to run it under several settings, add one line, e.g.::

    "goroutine": [["--procs", "1"], ["--procs", "2"]],

A strategy that cannot run here (``servers.unavailable``: uvloop without its extra) is
collected and skipped with the reason.

``launch(argv)`` starts ``python -m servers *argv``, waits for the listening line and
kills the server's whole process tree when the test ends, whatever happened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from servers import STRATEGIES, unavailable
from tests.servers.support import ServerProcess, start_server

VARIANTS: dict[str, list[list[str]]] = {
    # strategy -> extra-argument lists; the suite runs once per list.
    "goroutine": [["--procs", "1"], ["--procs", "2"]],
}


def all_server_argvs() -> list[list[str]]:
    return [[name, *extra] for name in STRATEGIES for extra in VARIANTS.get(name, [[]])]


def _argv_id(argv: list[str]) -> str:
    return "-".join(a.lstrip("-") for a in argv)


def _param(argv: list[str]):
    """``argv`` as a parameter; skipped, with the reason, if its strategy cannot run here."""
    reason = unavailable(argv[0])
    marks = [pytest.mark.skip(reason=reason)] if reason else []
    return pytest.param(argv, id=_argv_id(argv), marks=marks)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "server_argv" in metafunc.fixturenames:
        metafunc.parametrize("server_argv", [_param(a) for a in all_server_argvs()])


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
