"""``python -m servers STRATEGY [--host H] [--port P] [--backlog N] [--procs N]
[--thread-stack KiB]``.

Prints one ``listening`` JSON line, echoes until SIGTERM or SIGINT, exits 0. Bad arguments,
an address that cannot be bound, or a strategy that cannot run here (an optional package
missing): one line on stderr, exit 2.
"""

from __future__ import annotations

import sys

from common.limits import raise_fd_limit
from servers import STRATEGIES
from servers.base import UsageError, listen, parse_args, run


def main(argv: list[str] | None = None) -> int:
    try:
        name, config = parse_args(sys.argv[1:] if argv is None else argv, STRATEGIES)
        if reason := STRATEGIES[name].unavailable():
            raise UsageError(f"{name} cannot run here: {reason}")
        raise_fd_limit()
        sock = listen(config)
    except UsageError as err:
        print(f"servers: {err}", file=sys.stderr)
        return 2
    run(STRATEGIES[name](config), sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
