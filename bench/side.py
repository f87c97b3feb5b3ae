"""Run a module of this harness against the runtime of another tree (a side of a comparison).

``python -m bench.side [--counting] ROOT MODULE [ARGS...]`` (from this tree's root) runs
MODULE as ``python -m MODULE ARGS`` would, with ``goruntime`` and ``servers`` imported from
ROOT, the tree under test, and the harness (``bench.*``) from this tree. So both sides of
``runner.py regress`` are measured by the same harness code, and only the runtime and the
servers differ.

``--counting`` takes the wall clock and chance out of an instruction count, so that it
repeats to parts per million: ``random.seed(0)`` (select's case order, work stealing's
victims) and a GIL switch interval of :data:`COUNTING_SWITCH_INTERVAL_S`. Under valgrind an
operation takes ~50x its native time, so sysmon's clock-driven ticks would take the GIL
~50x more often per operation than natively, as often as the machine's load decides; with
the long interval the threads hand the GIL over when they block, as the runtime's own
logic decides. The hash seed must be fixed before the interpreter starts: the caller sets
``PYTHONHASHSEED=0`` (:data:`COUNTING_ENV`), and ``--counting`` refuses to run without it.

Preconditions, checked before MODULE runs: ROOT holds a ``goruntime`` package and it is
the one imported (not an installed copy). Otherwise one line on stderr and exit 2.
"""

from __future__ import annotations

import os
import random
import runpy
import sys
from pathlib import Path

USAGE = "usage: python -m bench.side [--counting] ROOT MODULE [ARGS...]"
COUNTING_SWITCH_INTERVAL_S = 10.0
COUNTING_ENV = {"PYTHONHASHSEED": "0"}


def argv_for(root: Path, module: str, *args: str, counting: bool = False) -> list[str]:
    """The command line that runs ``module ARGS`` against the tree at ``root``.

    It must be started with this harness's root as the working directory (and, with
    ``counting``, with :data:`COUNTING_ENV` in its environment).
    """
    flag = ["--counting"] if counting else []
    return [sys.executable, "-m", "bench.side", *flag, str(root), module, *args]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    counting = argv[:1] == ["--counting"]
    argv = argv[1:] if counting else argv
    if counting and any(os.environ.get(k) != v for k, v in COUNTING_ENV.items()):
        print(f"bench.side: --counting needs {COUNTING_ENV} in the environment",
              file=sys.stderr)
        return 2
    if len(argv) < 2:
        print(USAGE, file=sys.stderr)
        return 2
    root, module, rest = Path(argv[0]).resolve(), argv[1], argv[2:]
    if not (root / "goruntime" / "__init__.py").is_file():
        print(f"bench.side: {root} has no goruntime package", file=sys.stderr)
        return 2
    sys.path.insert(0, str(root))
    import goruntime

    got = Path(goruntime.__file__).resolve()
    if not got.is_relative_to(root):
        print(f"bench.side: goruntime came from {got.parent}, not {root}", file=sys.stderr)
        return 2
    if counting:
        random.seed(0)
        sys.setswitchinterval(COUNTING_SWITCH_INTERVAL_S)
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
