"""The regress result: two sides of ``runner.py regress``, measured in one sitting.

One JSON document of kind ``"regress"`` (``results/SCHEMA.md``, "Regress result"), stored
as ``<id>.json`` beside the runs. Its envelope is a run's (``git`` is the head side's);
``config.base`` names the base side (``ref``, ``sha``, ``commit_time``, ``baseline``).
Each case is one benchmark at one ``procs`` (``EchoServer-1`` is the goroutine server's
echo path) with a ``base`` and a ``head`` side, each holding:

* ``instructions``: instructions per operation counted under callgrind, one per count
  (empty when valgrind was not used);
* ``values``: µs per operation, one per measured value (for ``EchoServer``: server CPU
  µs per echoed message, one per closed-loop round);
* ``asyncio_values``: the asyncio counterpart measured right after each value in the
  same process, or ``null``;
* ``errors``: one line per failed measurement.

:func:`samples` turns a side into metric -> case label -> values, the form the verdicts
(``results/regress_report.py``) and ``runner.py history`` read.
"""

from __future__ import annotations

import json
from pathlib import Path

from results import compare, schema, store

KIND = "regress"
ECHO_CASE = "EchoServer"
SIDES = ("base", "head")

INSTRUCTIONS = compare.MetricSpec("instructions", "instructions/op", "lower", "instructions/op")
TIME, RATIO = compare.MICRO_METRICS
CPU = compare.MetricSpec("cpu/msg", "µs/msg", "lower", "cpu-ns/msg", 1000.0)
METRICS = (INSTRUCTIONS, TIME, RATIO, CPU)
ALIASES = {"instr": "instructions", "time": "time/op", "ratio": "vs asyncio", "cpu": "cpu/msg"}

_NUMS = {"type": "array", "items": schema.NUM}
SIDE = {
    "type": "object",
    "properties": {
        "instructions": _NUMS,
        "values": _NUMS,
        "asyncio_values": {"type": ["array", "null"], "items": schema.NUM},
        "errors": {"type": "array", "items": schema.STR},
    },
    "required": ["instructions", "values", "asyncio_values", "errors"],
}
CASE = {
    "type": "object",
    "properties": {"name": schema.STR, "procs": schema.INT, "unit": schema.STR,
                   "loops": schema.INT, "asyncio_loops": schema.INT_OR_NULL, "base": SIDE,
                   "head": SIDE},
    "required": ["name", "procs", "unit", "loops", "base", "head"],
}
BASE = {
    "type": "object",
    "properties": {"ref": schema.STR, "sha": schema.STR, "commit_time": schema.STR_OR_NULL,
                   "baseline": schema.STR_OR_NULL},
    "required": ["ref", "sha", "commit_time", "baseline"],
}
CONFIG = {
    "type": "object",
    "properties": {"base": BASE, "gate": {"enum": [INSTRUCTIONS.name, RATIO.name]},
                   "threshold": schema.NUM, "time_threshold": schema.NUM, "alpha": schema.NUM},
    "required": ["base", "gate", "threshold", "time_threshold", "alpha"],
}
ENVELOPE = {
    **schema.RUN,
    "properties": {**schema.RUN["properties"], "kind": {"enum": [KIND]}, "config": CONFIG},
}


def validate(doc: dict, where: str = "regress result") -> None:
    """Raise :class:`store.RunFileError` naming ``where`` and the first wrong field."""
    try:
        schema.check_document(doc, ENVELOPE, CASE)
    except schema.SchemaError as e:
        raise store.RunFileError(f"{where}: not a valid regress result ({e})") from None


def new_doc(config: dict) -> dict:
    """A fresh regress result with no cases: a run envelope of the head tree, kind regress."""
    return store.new_run(KIND, config)


def _new_side() -> dict:
    return {"instructions": [], "values": [], "asyncio_values": None, "errors": []}


def new_case(name: str, procs: int, unit: str) -> dict:
    return {"name": name, "procs": procs, "unit": unit, "loops": 0, "asyncio_loops": None,
            "base": _new_side(), "head": _new_side()}


def save(doc: dict, out_dir: Path | None = None) -> Path:
    """Validate and atomically write ``doc`` to ``<out_dir or RUNS_DIR>/<id>.json``."""
    validate(doc, f"regress result {doc.get('id', '?')}")
    target = Path(out_dir or store.RUNS_DIR) / f"{doc['id']}.json"
    store.atomic_write(json.dumps(doc, indent=1, allow_nan=False).encode(), target)
    return target


def load_all() -> list[dict]:
    """Every valid regress result in RUNS_DIR, oldest first (cases checked, not just the
    envelope the store checks)."""
    docs = []
    for doc, path in store.list_runs(KIND):
        try:
            validate(doc, str(path))
        except store.RunFileError:
            continue
        docs.append(doc)
    return docs


def label(case: dict) -> str:
    return compare.micro_label(case)


def samples(doc: dict, side: str) -> dict[str, dict[str, list[float]]]:
    """metric name -> case label -> the side's values, for every metric with values."""
    out: dict[str, dict[str, list[float]]] = {m.name: {} for m in METRICS}
    for case in doc["cases"]:
        s, lb = case[side], label(case)
        if s["instructions"]:
            out[INSTRUCTIONS.name][lb] = [float(v) for v in s["instructions"]]
        values = [float(v) for v in s["values"]]
        if not values:
            continue
        out[CPU.name if case["name"] == ECHO_CASE else TIME.name][lb] = values
        av = s["asyncio_values"]
        if av and len(av) == len(values) and all(a > 0 for a in av):
            out[RATIO.name][lb] = [v / a for v, a in zip(values, av, strict=True)]
    return out


def side_runs(doc: dict) -> list[dict]:
    """The two sides as run-like dicts (``id``, ``kind``, ``git``, ``created``), base first.

    ``runner.py history`` orders them by commit date like runs; :func:`samples` of the
    same ``side`` gives their values.
    """
    base = doc["config"]["base"]
    base_git = {"sha": base["sha"], "dirty": False, "commit_time": base["commit_time"]}
    return [
        {"id": f"{doc['id']}:base", "kind": KIND, "git": base_git, "created": doc["created"],
         "side": "base", "doc": doc},
        {"id": f"{doc['id']}:head", "kind": KIND, "git": doc["git"], "created": doc["created"],
         "side": "head", "doc": doc},
    ]
