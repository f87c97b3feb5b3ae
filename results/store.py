"""Run files: create, save atomically, find and load them, validated both ways.

A run is one JSON document (see ``results/SCHEMA.md``) stored as ``<id>.json`` under
:data:`RUNS_DIR` (or a directory the caller names). Files are replaced atomically (write
a hidden temp file beside the target, fsync, rename, fsync the directory), so a reader
sees either the previous complete run or the new one, never a half-written file.

``C10K_RUNS_DIR`` and ``C10K_BASELINES_DIR`` in the environment move the two
directories (tests use them so they never touch the real ``results/``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

from common.files import atomic_write
from results import schema
from results.machine import git_info, machine_info

_HERE = Path(__file__).resolve().parent
RUNS_DIR = Path(os.environ.get("C10K_RUNS_DIR") or _HERE / "runs")
BASELINES_DIR = Path(os.environ.get("C10K_BASELINES_DIR") or _HERE / "baselines")


class RunFileError(Exception):
    """A run cannot be found, read or trusted; ``str(e)`` is a one-line message for the user."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_run(kind: str, config: dict) -> dict:
    """A fresh run document of ``kind`` ("bench", "micro", "regress", "units"), no cases yet.

    The id is ``<UTC yyyymmdd-hhmmss>-<short sha>``; if a run with that id already exists
    in :data:`RUNS_DIR`, ``-2``, ``-3``… is appended.
    """
    if kind not in ("bench", "micro", "regress", "units"):
        raise ValueError(f"unknown run kind {kind!r}")
    now = _now()
    git = git_info()
    base = f"{now:%Y%m%d-%H%M%S}-{git['sha'][:7] if git['sha'] != 'unknown' else 'nogit'}"
    run_id, n = base, 1
    while (RUNS_DIR / f"{run_id}.json").exists():
        n += 1
        run_id = f"{base}-{n}"
    return {
        "schema": schema.VERSION,
        "kind": kind,
        "id": run_id,
        "created": now.isoformat(timespec="seconds"),
        "finished": None,
        "git": git,
        "machine": machine_info(),
        "config": config,
        "cases": [],
        "summary": None,
    }


def validate(run: dict, where: str = "run") -> None:
    """Raise :class:`RunFileError` naming ``where`` and the first field that is wrong."""
    try:
        schema.validate(run)
    except schema.SchemaError as e:
        raise RunFileError(f"{where}: not a valid run file ({e})") from None


def save_run(run: dict, out_dir: Path | None = None, new: bool = False) -> Path:
    """Validate ``run`` and atomically write it to ``<out_dir or RUNS_DIR>/<id>.json``.

    With ``new``, the file must not exist yet: if another run took the id (two runs
    started in the same second), ``-2``, ``-3``… is appended to ``run["id"]`` until the
    file is created, atomically, in the directory actually written. Raises
    :class:`RunFileError` (and writes nothing) when the run does not validate; ``OSError``
    when the directory cannot be written.
    """
    validate(run, f"run {run.get('id', '?')}")
    directory = Path(out_dir) if out_dir is not None else RUNS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    if not new:
        target = directory / f"{run['id']}.json"
        atomic_write(json.dumps(run, indent=1, allow_nan=False).encode(), target)
        return target
    base, n = run["id"], 1
    while True:
        target = directory / f"{run['id']}.json"
        if atomic_write(json.dumps(run, indent=1, allow_nan=False).encode(), target,
                        exclusive=True):
            return target
        n += 1
        run["id"] = f"{base}-{n}"


def read_run_file(path: Path) -> dict:
    """Load and validate one file; :class:`RunFileError` if unreadable, not JSON or invalid."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise RunFileError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise RunFileError(f"{path}: not a run file (not UTF-8 text)") from None
    try:
        run = json.loads(text)
    except json.JSONDecodeError as e:
        msg = f"bad JSON at line {e.lineno}: {e.msg}"
        raise RunFileError(f"{path}: not a run file ({msg})") from None
    validate(schema.upgrade(run), str(path))
    return run


_warned: set[Path] = set()


def list_runs(kind: str | None = None) -> list[tuple[dict, Path]]:
    """Every valid run in :data:`RUNS_DIR` (of ``kind`` if given), oldest first.

    A file that does not load or validate is skipped with a one-line warning on stderr
    (once per file and process) saying what is wrong with it.
    """
    runs = []
    for path in sorted(RUNS_DIR.glob("*.json")):
        try:
            run = read_run_file(path)
        except RunFileError as e:
            if path not in _warned:
                _warned.add(path)
                print(f"warning: skipping {e}", file=sys.stderr)
            continue
        if kind is None or run["kind"] == kind:
            runs.append((run, path))
    runs.sort(key=lambda rp: (rp[0]["created"], rp[0]["id"]))
    return runs


def load_run(ref: str) -> tuple[dict, Path]:
    """Find and load a run by reference.

    ``ref`` is a path to a file, a run id (or a unique prefix of one) in :data:`RUNS_DIR`,
    ``"latest"`` (any kind), ``"latest:bench"`` / ``"latest:micro"``, or ``"baseline:NAME"``
    (``BASELINES_DIR/NAME.json``). Raises :class:`RunFileError` with a one-line message
    when nothing matches or the file is unreadable or invalid.
    """
    if ref == "latest" or ref.startswith("latest:"):
        kind = ref.partition(":")[2] or None
        if kind not in (None, "bench", "micro"):
            raise RunFileError(f"{ref!r}: use latest, latest:bench or latest:micro")
        runs = list_runs(kind)
        if not runs:
            what = f"{kind} run" if kind else "run"
            raise RunFileError(f"no {what} in {RUNS_DIR} yet (run `runner.py {kind or 'bench'}`)")
        return runs[-1]
    if ref.startswith("baseline:"):
        name = ref.partition(":")[2]
        path = BASELINES_DIR / f"{name}.json"
        if not name or not path.is_file():
            raise RunFileError(f"no baseline {name!r} in {BASELINES_DIR}")
        return read_run_file(path), path
    path = Path(ref)
    if path.suffix == ".json" or os.sep in ref or path.is_file():
        if not path.exists():
            raise RunFileError(f"{ref}: no such file")
        return read_run_file(path), path
    exact = RUNS_DIR / f"{ref}.json"
    if exact.is_file():
        return read_run_file(exact), exact
    matches = sorted(RUNS_DIR.glob(f"{ref}*.json"))
    if len(matches) == 1:
        return read_run_file(matches[0]), matches[0]
    if len(matches) > 1:
        raise RunFileError(f"{ref!r} matches {len(matches)} runs; give more of the id")
    raise RunFileError(f"no run {ref!r} in {RUNS_DIR} (give an id, a path or 'latest')")
