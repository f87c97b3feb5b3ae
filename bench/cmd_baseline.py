"""``runner.py baseline save NAME [RUN]``, ``baseline list`` and ``baseline show NAME``.

A baseline is a copy of a run file under ``results/baselines/NAME.json``, which
``runner.py compare baseline:NAME RUN`` reads. Baselines belong to the machine they were
measured on: save one on the machine where ``make regress`` will run.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from tabulate import tabulate

from bench import UsageError
from results import store

HELP = "save a run as a named baseline (results/baselines/NAME.json), list or show them"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    s = sub.add_parser("save", help="copy RUN (default: latest) to results/baselines/NAME.json")
    s.add_argument("name", help="baseline name, e.g. micro")
    s.add_argument("run_ref", nargs="?", default="latest", metavar="RUN",
                   help="run id, path, latest, latest:micro or latest:bench (default latest)")
    sub.add_parser("list", help="list the saved baselines")
    sh = sub.add_parser("show", help="describe baseline NAME; exit 2 if there is none")
    sh.add_argument("name")


def save(name: str, ref: str) -> Path:
    """Copy the run ``ref`` to ``BASELINES_DIR/name.json`` atomically; the target path."""
    if not _NAME.match(name):
        raise UsageError(f"baseline name {name!r}: use letters, digits, '.', '_' or '-'")
    try:
        run, src = store.load_run(ref)
    except store.RunFileError as e:
        raise UsageError(str(e)) from None
    target = store.BASELINES_DIR / f"{name}.json"
    if src.resolve() == target.resolve():
        raise UsageError(f"{src} is already baseline {name!r}")
    store.atomic_write(src.read_bytes(), target)
    return target


def run(args) -> int:
    if args.action == "save":
        existed = (store.BASELINES_DIR / f"{args.name}.json").exists()
        target = save(args.name, args.run_ref)
        run_doc = store.read_run_file(target)
        verb = "replaced" if existed else "saved"
        print(f"{verb} baseline {args.name!r}: {run_doc['kind']} run {run_doc['id']} "
              f"(git {run_doc['git']['sha'][:10]}) -> {target}")
        return 0
    if args.action == "show":
        try:
            r, path = store.load_run(f"baseline:{args.name}")
        except store.RunFileError as e:
            raise UsageError(f"{e}: save one with `runner.py baseline save {args.name} [RUN]`") \
                from None
        print(f"baseline {args.name!r}: {r['kind']} run {r['id']} (git {r['git']['sha'][:10]}, "
              f"{len(r['cases'])} cases, machine {r['machine']['hostname']}) at {path}")
        return 0
    rows = []
    for path in sorted(store.BASELINES_DIR.glob("*.json")):
        try:
            r = store.read_run_file(path)
        except store.RunFileError as e:
            rows.append([path.stem, "invalid", str(e), "", "", ""])
            continue
        rows.append([path.stem, r["kind"], r["id"], r["git"]["sha"][:10], r["created"],
                     len(r["cases"])])
    if not rows:
        print(f"no baselines in {store.BASELINES_DIR} "
              "(save one with `runner.py baseline save NAME [RUN]`)")
        return 0
    print(tabulate(rows, headers=["name", "kind", "run", "git", "created", "cases"],
                   disable_numparse=True))
    return 0
