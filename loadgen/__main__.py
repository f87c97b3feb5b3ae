"""`python -m loadgen ...` runs a load test; `python -m loadgen worker --master H:P` a worker.

Arguments are checked before Locust (and with it gevent's monkey-patching) is imported,
so a bad command line fails fast with one line and exit code 2.
"""

from __future__ import annotations

import os
import signal
import sys

from loadgen.config import UsageError, parse, parse_worker


def _exit_quietly(signum: int, _frame) -> None:
    os._exit(128 + signum)  # nothing started yet: no worker to stop, no result to keep


def main(argv: list[str]) -> int:
    # Until gevent's handlers take over (after Locust's import), Ctrl-C must not print a
    # KeyboardInterrupt traceback from the middle of an import.
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _exit_quietly)
    try:
        if argv[:1] == ["worker"]:
            args = parse_worker(argv[1:])
        else:
            cfg = parse(argv)
    except UsageError as e:
        print(f"loadgen: error: {e}", file=sys.stderr)
        return 2
    if argv[:1] == ["worker"]:
        from loadgen.worker import run_worker

        return run_worker(args)
    from loadgen.master import run_master

    return run_master(cfg)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
