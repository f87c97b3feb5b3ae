"""Fresh measuring processes that answer with one JSON line (the pyperf worker model).

:func:`run_json` is the parent's side: run a worker command, return its last stdout line
parsed, or raise ``RuntimeError`` with a one-line reason (its last stderr line, a timeout,
no result); a worker is never left running, Ctrl-C included. :func:`emit` is the worker's
side: print the result of a measurement as one JSON line and exit 0, or one line on stderr
and exit 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_json(cmd: list[str], timeout: float) -> dict:
    """Run ``cmd`` from the project root with it on ``PYTHONPATH``; its JSON result."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("GODEBUG", None)  # a schedtrace line every second would only add noise
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"worker timed out after {timeout:.0f} s") from None
    finally:
        if proc.poll() is None:  # Ctrl-C while waiting: leave no worker behind
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        raise RuntimeError(lines[-1] if lines else f"worker exited with {proc.returncode}")
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise RuntimeError("worker printed no result") from None


def emit(what: str, measure: Callable[[], dict]) -> int:
    """Print ``measure()`` as one JSON line (0), or ``what: Error: message`` on stderr (1)."""
    try:
        result = measure()
    except Exception as e:  # a bug or a refusal: one line for the parent, which records it
        msg = str(e).splitlines()[0] if str(e) else ""
        print(f"{what}: {type(e).__name__}: {msg}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    return 0
