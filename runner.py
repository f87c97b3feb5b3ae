#!/usr/bin/env python3
"""c10k-bench command line: bench, report, compare, history, micro, regress, baseline, units,
ceiling.

Each subcommand lives in its own module under ``bench/`` (``bench/cmd_<name>.py``)
exposing ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. This file
only wires them: it turns a ``UsageError`` into one line on stderr and exit 2,
and Ctrl-C into exit 130 (the command itself keeps what it finished).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from common.cli import Parser, UsageError

COMMANDS = ("bench", "report", "compare", "history", "micro", "regress", "baseline", "units",
            "ceiling")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="runner.py", description=__doc__.splitlines()[0], prog_in_errors=True)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"bench.cmd_{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args._module.run(args) or 0)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `runner.py history | head`: the reader left; not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # cleanup is done: exit
            signal.signal(sig, signal.SIG_IGN)
        print("interrupted: finished cases are saved", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
