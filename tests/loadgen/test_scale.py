"""10,000 persistent connections held against the asyncio server by 2 workers."""

from __future__ import annotations

from tests.loadgen.conftest import run_loadgen


def test_ten_thousand_connections_all_connected_all_verified(asyncio_server):
    r = run_loadgen(asyncio_server.port, "--connections", "10000", "--workers", "2",
                    "--mode", "open", "--rate", "5000", "--duration", "3", "--warmup", "1",
                    "--ramp-rate", "5000", "--ramp-timeout", "60", timeout=150)
    c = r["connections"]
    assert c["connected"] == c["served"] == 10_000
    assert not c["ramp_timed_out"]
    assert sum(r["errors"].values()) == 0
    assert sum(r["connect_errors"].values()) == 0
    assert [w["connections"] for w in r["workers"]] == [5000, 5000]
    assert r["messages"] > 0.9 * 15_000
    assert r["latency_us"]["corrected"]["count"] == r["messages"]
