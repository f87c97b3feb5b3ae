"""Models and references: the registry's kinds, and a reference that cannot run here.

The contract itself is ``test_contract.py``, run for every strategy of either kind.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import servers
from servers import MODEL, MODELS, REFERENCE, REFERENCES, STRATEGIES
from tests.servers.support import ROOT, roundtrip

HIDE_UVLOOP = "import sys; sys.modules['uvloop'] = None; "  # import uvloop -> ImportError
RUN_SERVERS = "import runpy; runpy.run_module('servers', run_name='__main__', alter_sys=True)"


def _python_without_uvloop(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", HIDE_UVLOOP + code, *args], cwd=ROOT, capture_output=True,
        text=True, timeout=60,
    )


def test_the_four_models_are_the_subject_and_the_rest_references():
    assert MODELS == ("iterative", "fork", "thread", "goroutine")
    assert REFERENCES == ("asyncio", "asyncio-streams", "gevent", "uvloop")
    assert MODELS + REFERENCES == tuple(STRATEGIES)
    assert {servers.kind(n) for n in MODELS} == {MODEL}
    assert {servers.kind(n) for n in REFERENCES} == {REFERENCE}


def test_kinds_are_read_without_importing_a_server_module():
    done = subprocess.run(
        [sys.executable, "-c",
         "import sys, servers; servers.REFERENCES; servers.kind('gevent'); "
         "print(sorted(m for m in sys.modules if m.startswith(('servers.', 'gevent'))))"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert done.stdout.strip() == "['servers.base']", done.stderr


@pytest.mark.parametrize("name", ["asyncio", "asyncio-streams", "gevent", "uvloop"])
@pytest.mark.timeout(60)
def test_reference_serves_every_connection_on_one_thread(launch, name):
    """A coroutine or greenlet per connection, not a thread: 50 connections, one thread."""
    if reason := servers.unavailable(name):
        pytest.skip(reason)
    server = launch([name, "--port", "0"])
    conns = [server.connect() for _ in range(50)]
    for i, c in enumerate(conns):
        assert roundtrip(c, b"conn %d" % i) == b"conn %d" % i
    assert len(server.ps.net_connections(kind="tcp")) == 51  # the listener and 50 served
    assert server.ps.num_threads() == 1
    for c in conns:
        c.close()


def test_without_uvloop_it_is_listed_with_a_reason_and_the_others_run():
    done = _python_without_uvloop(
        "import json, servers; "
        "print(json.dumps({n: servers.unavailable(n) for n in servers.STRATEGIES}))"
    )
    assert done.returncode == 0, done.stderr
    reasons = json.loads(done.stdout)
    assert list(reasons) == list(STRATEGIES)
    assert [n for n, why in reasons.items() if why] == ["uvloop"]
    assert "uvloop is not importable" in reasons["uvloop"]
    assert ".[peers]" in reasons["uvloop"]


def test_without_uvloop_python_m_servers_uvloop_exits_2_with_one_line():
    done = _python_without_uvloop(RUN_SERVERS, "uvloop", "--port", "0")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("servers: uvloop cannot run here: uvloop is not importable")
    assert len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr


@pytest.mark.timeout(120)
def test_without_uvloop_the_contract_suite_skips_uvloop_with_the_reason():
    done = _python_without_uvloop(
        "import pytest; sys.exit(pytest.main(sys.argv[1:]))",
        "-q", "-rs", "-p", "no:cacheprovider", "tests/servers/test_contract.py",
        "-k", "test_listening_line and (uvloop or asyncio-streams)",
    )
    assert done.returncode == 0, done.stdout
    assert "1 passed, 1 skipped" in done.stdout
    assert "SKIPPED [1]" in done.stdout and "uvloop is not importable" in done.stdout
