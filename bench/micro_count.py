"""Instructions per operation of one micro-benchmark, counted by callgrind (load cannot move it).

Parent side, :func:`count`: runs this module under ``valgrind --tool=callgrind
--instr-atstart=no`` against a tree (through :mod:`bench.side`) and returns
(c2 - c1) / (L2 - L1), the instructions of one operation, from the two counts it dumps.

Child side, ``python -m bench.side ROOT bench.micro_count NAME --procs P --loops L1,L2
--marks LIB``: runs the benchmark once with :data:`WARMUP` loops, uninstrumented (imports,
the interpreter's first-call specialisation); then turns instrumentation on, zeroes the
counters, runs L1 loops and dumps, runs L2 loops and dumps, through the callgrind client
requests of ``bench/callgrind_marks.c`` (LIB, built by :func:`build_marks`). Each run's
set-up (the scheduler's start-up, G creation, ``gc.collect``) cancels in the difference.
LIB also holds the allocator of ``bench/counting_alloc.c``, which :func:`load_marks`
installs first, so that a count does not depend on the heap's layout (the tree's path).

The child runs in :mod:`bench.side`'s counting mode (a fixed hash seed, a seeded
``random``, a long GIL switch interval). At procs 1 only the main thread is counted
(callgrind's ``--separate-threads``; a dump is the calling thread's): it is M0, which runs
every G when no G blocks in a system call, as none of the micro-benchmarks does. Sysmon's
thread is left out: it ticks by the wall clock, and while NetpollRoundTrip waits in epoll it
runs as often as the load decides, moving the total by a few percent from run to run. So
at procs 1 a count repeats to parts per million, except where M0 itself acts on the clock
(NetpollRoundTrip's network polls: ±1.5%, see results/regress_report.py). At procs >= 2
every thread is counted (the Gs move between the Ms), and the Ms race: who finds a G, who
spins, who parks. Valgrind runs one thread at a time; with ``--fair-sched=yes`` they take
turns in a fixed order instead of as the OS wakes them. Without it Gosched-2's count moved
by 25% between runs of identical code and MutexContended-2's by 10%; with it most procs-2
counts repeat within 0.5%, MutexContended-2's and NetpollRoundTrip-2's within 1.5%,
Gosched-2's within ~10%. What remains follows wakeups that come back from the kernel when
they do, and sysmon's clock-driven ticks.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench import side

ROOT = Path(__file__).resolve().parent.parent
MARKS_SOURCES = (ROOT / "bench" / "callgrind_marks.c", ROOT / "bench" / "counting_alloc.c")
WARMUP = 200
LOOPS = (1000, 3000)
# Benchmarks whose operation costs several times the others': fewer loops, same precision.
LOOPS_BY_NAME = {"SelectSyncContended": (400, 1200), "NetpollRoundTrip": (400, 1200)}
COUNT_TIMEOUT_S = 900.0
INSTALL_HINT = "install it with `apt-get install valgrind`"


class CountError(RuntimeError):
    """A count could not be taken; ``str(e)`` is one line saying why."""


def loops_for(name: str) -> tuple[int, int]:
    return LOOPS_BY_NAME.get(name, LOOPS)


def build_marks(tmp: Path) -> Path:
    """Compile :data:`MARKS_SOURCES` into one library in ``tmp``; CountError naming what is
    missing."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise CountError("no C compiler (cc) to build the callgrind marks")
    out = tmp / "libcallgrind_marks.so"
    r = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(out),
                        *map(str, MARKS_SOURCES), "-lpthread"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        why = "valgrind's headers are missing" if "callgrind.h" in r.stderr else \
            (r.stderr.strip().splitlines() or ["cc failed"])[-1]
        raise CountError(f"cannot build the callgrind marks: {why}")
    return out


def unavailable(tmp: Path) -> tuple[str | None, Path | None]:
    """(why instructions cannot be counted, or None; the marks library when they can)."""
    if shutil.which("valgrind") is None:
        return "valgrind not found", None
    try:
        return None, build_marks(tmp)
    except CountError as e:
        return str(e), None


def load_marks(path: Path) -> ctypes.CDLL:
    """Load :func:`build_marks`'s library into this (counted) process and install its
    allocator for CPython's raw domain (once per process; see bench/counting_alloc.c)."""
    lib = ctypes.CDLL(str(path))
    lib.counting_alloc_install.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    api = ctypes.pythonapi
    lib.counting_alloc_install(ctypes.cast(api.PyMem_GetAllocator, ctypes.c_void_p),
                               ctypes.cast(api.PyMem_SetAllocator, ctypes.c_void_p))
    return lib


def _dumped(path: Path) -> int:
    m = re.search(r"^(?:summary|totals):\s*(\d+)", path.read_text(), re.M)
    if m is None:
        raise CountError(f"callgrind dump {path.name} has no total")
    return int(m.group(1))


@dataclass
class Counting:
    """One count under way: the valgrind process, where it dumps, the two loop counts."""

    proc: subprocess.Popen
    out: Path
    loops: tuple[int, int]
    main_thread_only: bool

    def result(self) -> float:
        """Instructions per operation; :class:`CountError` with a one-line reason on failure."""
        try:
            _, err = self.proc.communicate(timeout=COUNT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise CountError(f"valgrind took more than {COUNT_TIMEOUT_S:.0f} s") from None
        suffix = "-01" if self.main_thread_only else ""
        dumps = [Path(f"{self.out}.1{suffix}"), Path(f"{self.out}.2{suffix}")]
        if self.proc.returncode != 0 or not all(p.exists() for p in dumps):
            lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("==")]
            raise CountError(lines[-1] if lines else f"valgrind exited with {self.proc.returncode}")
        c1, c2 = (_dumped(p) for p in dumps)
        l1, l2 = self.loops
        return (c2 - c1) / (l2 - l1)

    def close(self) -> None:
        """Kill the process if it still runs and delete its dumps (safe to call twice)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        for p in self.out.parent.glob(f"{self.out.name}*"):
            p.unlink(missing_ok=True)


def start_argv(argv: list[str], out: Path, loops: tuple[int, int],
               main_thread_only: bool) -> Counting:
    """Start ``argv`` (a :func:`bench.side.argv_for` command in counting mode, which marks
    two counts with ``callgrind_marks``) under callgrind, dumping to ``out``.

    With ``main_thread_only`` only the main thread's counts are kept (a dump is the
    calling thread's, so the main thread must set the marks).
    """
    vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--fair-sched=yes",
          f"--separate-threads={'yes' if main_thread_only else 'no'}",
          f"--callgrind-out-file={out}"]
    env = dict(os.environ, **side.COUNTING_ENV)
    env.pop("GODEBUG", None)  # a schedtrace line per second would be counted
    proc = subprocess.Popen([*vg, *argv], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    return Counting(proc, out, loops, main_thread_only)


def start(root: Path, name: str, procs: int, marks: Path, workdir: Path,
          loops: tuple[int, int] | None = None) -> Counting:
    """Start counting ``name`` at ``procs`` in the tree at ``root``; the caller closes it."""
    l1, l2 = loops or loops_for(name)
    assert 0 < l1 < l2, "the second run must do more operations than the first"
    out = workdir / f"{name}-{procs}-{uuid.uuid4().hex[:8]}.cg"
    argv = side.argv_for(root, "bench.micro_count", name, "--procs", str(procs),
                         "--loops", f"{l1},{l2}", "--marks", str(marks), counting=True)
    return start_argv(argv, out, (l1, l2), procs == 1)


def count(root: Path, name: str, procs: int, marks: Path, workdir: Path,
          loops: tuple[int, int] | None = None) -> float:
    """Instructions per operation of ``name`` at ``procs`` in the tree at ``root``.

    Raises :class:`CountError` with a one-line reason when the run fails.
    """
    c = start(root, name, procs, marks, workdir, loops)
    try:
        return c.result()
    finally:
        c.close()


def _loops(text: str) -> tuple[int, int]:
    try:
        l1, l2 = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--loops wants L1,L2, not {text!r}") from None
    if not 0 < l1 < l2:
        raise argparse.ArgumentTypeError(f"--loops wants 0 < L1 < L2, not {text!r}")
    return l1, l2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="micro_count")
    ap.add_argument("name")
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--loops", type=_loops, default=LOOPS)
    ap.add_argument("--marks", type=Path, required=True)
    args = ap.parse_args(argv)
    from goruntime.micro import BENCHMARKS

    if args.name not in BENCHMARKS:
        print(f"micro_count: no benchmark named {args.name!r}", file=sys.stderr)
        return 2
    b = BENCHMARKS[args.name]
    marks = load_marks(args.marks)
    try:
        b.run(WARMUP, args.procs)
        marks.marks_start()
        marks.marks_zero()
        for loops in args.loops:
            b.run(loops, args.procs)
            marks.marks_dump()
    except Exception as e:  # a runtime bug: one line for the parent, which records it
        msg = str(e).splitlines()[0] if str(e) else ""
        print(f"micro_count: {args.name}: {type(e).__name__}: {msg}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
