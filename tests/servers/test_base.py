"""The shared parts of the servers: registry and accept backoff policy."""

from __future__ import annotations

import errno

import pytest

from servers import STRATEGIES
from servers.base import (
    ACCEPT_BACKOFF_MAX,
    ACCEPT_BACKOFF_MIN,
    AcceptBackoff,
    Config,
    Server,
    UsageError,
    parse_args,
)


def test_registry_has_the_four_strategies_as_server_classes():
    assert {"iterative", "fork", "thread", "asyncio"} <= set(STRATEGIES)
    for name, cls in STRATEGIES.items():
        assert issubclass(cls, Server)
        assert cls.name == name


def test_backoff_doubles_from_5ms_to_1s_and_resets_on_success(capsys):
    backoff = AcceptBackoff()
    emfile = OSError(errno.EMFILE, "Too many open files")
    delays = [backoff.failed(emfile) for _ in range(10)]
    assert delays == [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0, 1.0]
    assert (delays[0], delays[-1]) == (ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX)
    backoff.succeeded()
    assert backoff.failed(OSError(errno.ECONNABORTED, "aborted")) == 0.005
    assert "retrying in 5ms" in capsys.readouterr().err


@pytest.mark.parametrize("code", [errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED])
def test_backoff_treats_resource_errors_as_temporary(code):
    assert AcceptBackoff().failed(OSError(code, "x")) == ACCEPT_BACKOFF_MIN


def test_backoff_reraises_permanent_errors():
    with pytest.raises(OSError) as info:
        AcceptBackoff().failed(OSError(errno.EBADF, "Bad file descriptor"))
    assert info.value.errno == errno.EBADF


def test_parse_args_defaults_bind_loopback():
    name, config = parse_args(["thread"], STRATEGIES)
    assert name == "thread"
    assert config == Config(host="127.0.0.1", port=0)
    assert config.thread_stack_kib == 256


def test_parse_args_reads_every_option():
    name, config = parse_args(
        ["fork", "--host", "0.0.0.0", "--port", "8080", "--backlog", "10", "--procs", "2",
         "--thread-stack", "512"],
        STRATEGIES,
    )
    assert (name, config) == ("fork", Config("0.0.0.0", 8080, 10, 2, 512))


def test_parse_args_names_the_strategies_on_a_typo():
    with pytest.raises(UsageError, match="unknown strategy 'thred': choose one of iterative"):
        parse_args(["thred"], STRATEGIES)
