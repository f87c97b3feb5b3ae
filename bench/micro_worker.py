"""One fresh process measuring one runtime micro-benchmark (the pyperf worker model).

``python -m bench.micro_worker NAME --procs P --values V --warmups W [--min-time S]
[--loops L] [--asyncio-loops L]`` imports ``goruntime.micro``, then:

1. calibrates the loop count (unless ``--loops`` is given) so that one value takes at
   least ``--min-time`` seconds, separately for goruntime and its asyncio counterpart;
2. runs ``--warmups`` pairs of values and throws them away;
3. runs ``--values`` pairs: a goruntime value, then the asyncio value right after it, so
   each pair sees the same machine load and their ratio is robust to noise.

It prints one JSON line on stdout: ``{"name", "procs", "loops", "asyncio_loops",
"values", "asyncio_values", "calibration_s"}`` with values in µs/op (``asyncio_values``
is null when the benchmark has no asyncio counterpart). On failure it prints one line
on stderr and exits 1 (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable

from bench.worker import emit

MAX_LOOPS = 1 << 30


def calibrate(bench: Callable[[int], float], min_time: float) -> int:
    """The smallest tried loop count whose run takes at least ``min_time`` seconds.

    Grows the count from 1 by the factor the last timing suggests (with 20% headroom),
    at most ×10 per step so one noisy fast run cannot make it overshoot by orders of
    magnitude; each trial run also warms up caches and the interpreter.
    """
    loops = 1
    while True:
        dt = bench(loops)
        if dt >= min_time or loops >= MAX_LOOPS:
            return loops
        factor = 10.0 if dt <= 0 else min(10.0, max(2.0, 1.2 * min_time / dt))
        loops = min(MAX_LOOPS, math.ceil(loops * factor))


def measure(
    name: str,
    procs: int,
    values: int,
    warmups: int,
    min_time: float,
    loops: int | None = None,
    asyncio_loops: int | None = None,
) -> dict:
    """Calibrate, warm up and measure one benchmark; the result dict described above."""
    from goruntime.micro import BENCHMARKS

    b = BENCHMARKS[name]
    go = lambda n: b.run(n, procs)
    t0 = time.perf_counter()
    if loops is None:
        loops = calibrate(go, min_time)
    has_asyncio = b.run_asyncio(1) is not None
    if has_asyncio and asyncio_loops is None:
        asyncio_loops = calibrate(b.run_asyncio, min_time)
    calibration_s = time.perf_counter() - t0
    out_go, out_aio = [], []
    for i in range(warmups + values):
        g = go(loops) / loops * 1e6
        a = b.run_asyncio(asyncio_loops) / asyncio_loops * 1e6 if has_asyncio else None
        if i >= warmups:
            out_go.append(g)
            if a is not None:
                out_aio.append(a)
    return {
        "name": name,
        "procs": procs,
        "loops": loops,
        "asyncio_loops": asyncio_loops if has_asyncio else None,
        "values": out_go,
        "asyncio_values": out_aio if has_asyncio else None,
        "calibration_s": calibration_s,
    }


def _positive(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {v}")
    return v


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="micro_worker")
    p.add_argument("name")
    p.add_argument("--procs", type=_positive, default=1)
    p.add_argument("--values", type=_positive, default=3)
    p.add_argument("--warmups", type=int, default=1)
    p.add_argument("--min-time", type=float, default=0.1)
    p.add_argument("--loops", type=_positive)
    p.add_argument("--asyncio-loops", type=_positive)
    args = p.parse_args(argv)
    from goruntime.micro import BENCHMARKS

    if args.name not in BENCHMARKS:
        print(f"micro_worker: no benchmark named {args.name!r}", file=sys.stderr)
        return 2
    return emit(f"micro_worker: {args.name}", lambda: measure(
        args.name, args.procs, args.values, max(0, args.warmups), args.min_time, args.loops,
        args.asyncio_loops))


if __name__ == "__main__":
    sys.exit(main())
