"""The run file's schema (version 2) and the small validator that enforces it.

The schema is written in a subset of JSON Schema (``type``, ``properties``, ``required``,
``items``, ``enum``, ``pattern``, ``minimum``, ``additionalProperties``, ``anyOf``) so that
it reads like one and could be handed to a full validator; :func:`validate` implements that
subset and nothing more. ``results/SCHEMA.md`` explains every field in prose.

A run is validated when it is written and when it is read; a bench case whose ``status``
is ``"ok"`` must carry every measurement, a failed or aborted one may leave them ``null``.
Version-1 files are read through :func:`upgrade`, which gives their cases the version-2
fields (verdict, CPU block, measurement defects) computed from what version 1 recorded.
"""

from __future__ import annotations

import re
from typing import Any

from results import verdict

VERSION = 2
READABLE = (1, 2)

NUM = {"type": "number"}
INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
NUM_OR_NULL = {"type": ["number", "null"]}
INT_OR_NULL = {"type": ["integer", "null"]}
STR_OR_NULL = {"type": ["string", "null"]}


def _obj(props: dict[str, Any], required: list[str] | None = None, extra: bool = True) -> dict:
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
        "additionalProperties": extra,
    }


def _percentiles() -> dict:
    keys = ["p50", "p90", "p99", "p99.9", "p99.99", "max", "mean", "count"]
    return _obj({k: NUM for k in keys})


GIT = _obj({"sha": STR, "dirty": {"type": ["boolean", "null"]}, "commit_time": STR_OR_NULL})

MACHINE = _obj(
    {
        "hostname": STR,
        "cpu_model": STR,
        "cores_logical": INT,
        "cores_physical": INT_OR_NULL,
        "affinity": {"type": "array", "items": INT},
        "kernel": STR,
        "os": STR,
        "python": STR,
        "fd_limit": _obj({"soft": INT, "hard": INT}),
        "memory_total": INT,
        "memory_available": INT,
        "somaxconn": INT_OR_NULL,
        "tcp_max_syn_backlog": INT_OR_NULL,
        "ip_local_port_range": {"type": ["array", "null"], "items": INT},
    }
)

KEY = _obj(
    {
        "strategy": STR,
        "connections": {"type": "integer", "minimum": 1},
        "rate": NUM_OR_NULL,
        "size": {"type": "integer", "minimum": 1},
        "mode": {"enum": ["open", "closed"]},
        "conn_mode": {"enum": ["persistent", "per-message"]},
        "repeat": {"type": "integer", "minimum": 0},
    },
    extra=False,
)

# The loadgen's result dict (python -m loadgen --json-out), as results/SCHEMA.md lists it.
LOADGEN = _obj(
    {
        "config": {"type": "object"},
        "connections": _obj(
            {
                "target": INT,
                "connected": INT,
                "served": INT,
                "ramp_timed_out": BOOL,
                "ramp_s": NUM,
            }
        ),
        "connect_errors": _obj({k: INT for k in ["refused", "reset", "timeout", "other"]}),
        "errors": _obj(
            {k: INT for k in ["refused", "reset", "timeout", "corrupt", "closed", "other"]}
        ),
        "measure_s": NUM,
        "window": {"anyOf": [_obj({"start": NUM, "end": NUM, "boot_id": STR_OR_NULL,
                                   "source": {"enum": ["workers", "master"]}}),
                             {"type": "null"}]},
        "messages": INT,
        "bytes": INT,
        "rate": _obj({"target": NUM_OR_NULL, "achieved": NUM}),
        "fairness": _obj(
            {"min": NUM, "median": NUM, "max": NUM, "jain": NUM, "starved": INT}
        ),
        "latency_us": _obj({"corrected": _percentiles(), "uncorrected": _percentiles()}),
        "histograms": _obj({"corrected": STR, "uncorrected": STR}),
        "intervals": {
            "type": "array",
            "items": _obj({"t": NUM, "messages": INT, "rate": NUM}, required=["t", "rate"]),
        },
        "workers": {"type": "array", "items": {"type": "object"}},
        "limit": _obj({"bound": BOOL, "reasons": {"type": "array", "items": STR}}),
        "lost_workers": {"type": "array", "items": _obj(
            {"index": INT, "host": STR, "address": STR, "pid": INT, "phase": STR, "at": NUM,
             "why": STR})},
        "late_workers": {"type": "array", "items": _obj({"host": STR, "phase": STR,
                                                         "at": NUM})},
    }
)
# Results written before workers could be lost or late lack these two.
LOADGEN["required"] = [k for k in LOADGEN["required"]
                       if k not in ("lost_workers", "late_workers")]

# One row of the server's sampled time series (every ~250 ms).
SAMPLE = _obj(
    {
        "t": NUM,
        "rss": INT,
        "pss": INT_OR_NULL,
        "uss": INT_OR_NULL,
        "threads": INT,
        "procs": INT,
        "fds": INT_OR_NULL,
        "mem_available": INT,
    }
)

FOOTPRINT = _obj(
    {
        "rss": INT_OR_NULL,
        "pss": INT_OR_NULL,
        "uss": INT_OR_NULL,
        "threads": INT_OR_NULL,
        "procs": INT_OR_NULL,
        "fds": INT_OR_NULL,
    }
)

SERVER = _obj(
    {
        "pid": INT,
        "idle": FOOTPRINT,
        "load": FOOTPRINT,
        "peak": _obj({"rss": INT, "pss": INT_OR_NULL, "threads": INT, "procs": INT, "fds": INT}),
        "ctx_switches": _obj({"voluntary": INT, "involuntary": INT}),
        "smaps_interval_s": NUM_OR_NULL,
        "samples": INT,
        "series": {"type": "array", "items": SAMPLE},
        "exit": _obj({"code": INT_OR_NULL, "signal": INT_OR_NULL}),
    }
)

CPU = _obj(
    {
        "cores": NUM,
        "percent": NUM,
        "cpu_s": NUM_OR_NULL,
        "limit_cores": NUM,
        "quota": NUM_OR_NULL,
        "source": {"enum": ["cgroup", "proc", "v1-sampled"]},
        "gap_s": NUM_OR_NULL,
        "stall": NUM_OR_NULL,
    },
    required=["cores", "percent", "limit_cores", "source"],
)

VERDICT = _obj({"kind": {"enum": ["held", "server-bound", "loadgen-bound", "failed"]},
                "reason": STR})

BENCH_CASE = _obj(
    {
        "key": KEY,
        "status": {"type": "string", "pattern": r"^(ok|failed: .+|aborted: .+)$"},
        "verdict": VERDICT,
        "window": {"anyOf": [_obj({"start": NUM, "end": NUM}), {"type": "null"}]},
        "cpu": _obj({
            "server": {"anyOf": [CPU, {"type": "null"}]},
            "loadgen": {"anyOf": [CPU, {"type": "null"}]},
            "series": _obj({"server": {"type": "array"}, "loadgen": {"type": "array"}}),
        }),
        "started": STR,
        "duration_s": NUM,
        "server_cmd": {"type": "array", "items": STR},
        "pin": {"type": ["object", "null"]},
        "loadgen": {"anyOf": [LOADGEN, {"type": "null"}]},
        "loadgen_proc": {"anyOf": [_obj({"peak_rss": INT}), {"type": "null"}]},
        "server": {"anyOf": [SERVER, {"type": "null"}]},
        "cpu_s_per_1k_msgs": NUM_OR_NULL,
        "mem_per_conn": _obj(
            {"metric": {"enum": ["rss", "pss"]}, "bytes": NUM_OR_NULL, "connections": INT_OR_NULL},
            required=["metric", "bytes"],
        ),
        "machine_mem": _obj({"available_before": INT, "available_min": INT, "drop": INT}),
        "netstat": _obj({"ListenOverflows": INT_OR_NULL, "ListenDrops": INT_OR_NULL}),
        "defects": {"type": "array", "items": STR},
        "measurement_defects": {"type": "array", "items": STR},
        "notes": {"type": "array", "items": STR},
    }
)

# What an "ok" bench case must have filled in (no nulls where a measurement belongs;
# a figure that could not be measured is named in measurement_defects or notes).
BENCH_CASE_OK = _obj(
    {
        "loadgen": LOADGEN,
        "loadgen_proc": _obj({"peak_rss": INT}),
        "server": SERVER,
    },
    required=["loadgen", "loadgen_proc", "server"],
)

MICRO_CASE = _obj(
    {
        "name": STR,
        "procs": INT,
        "unit": STR,
        "loops": INT,
        "values": {"type": "array", "items": NUM},
        "asyncio_values": {"type": ["array", "null"], "items": NUM},
        "ratio_median": NUM_OR_NULL,
    }
)

CAPACITY = _obj(
    {
        "strategy": STR,
        "connections": INT,
        "knee": NUM_OR_NULL,
        "bound": {"enum": ["server", "loadgen", "none", "failed"]},
        "reason": STR,
        "steps": {"type": "array", "items": _obj({"rate": NUM, "verdict": STR,
                                                  "p99_ms": NUM_OR_NULL})},
    }
)

RUN = _obj(
    {
        "schema": {"enum": [VERSION]},
        "kind": {"enum": ["bench", "micro", "regress", "units"]},
        "id": {"type": "string", "pattern": r"^\d{8}-\d{6}-[0-9a-z]+(-\d+)?$"},
        "created": STR,
        "finished": STR_OR_NULL,
        "git": GIT,
        "machine": MACHINE,
        "config": {"type": "object"},
        "cases": {"type": "array", "items": {"type": "object"}},
        "summary": {"type": ["object", "null"]},
        "capacity": {"type": "array", "items": CAPACITY},
    },
    required=["schema", "kind", "id", "created", "git", "machine", "config", "cases"],
)


class SchemaError(ValueError):
    """A document does not match the schema; ``str(e)`` names the field and the problem."""


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}


def _is(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("number", "integer"):
        return False  # JSON Schema: true is not a number
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES[name])


def check(value: Any, schema: dict, path: str = "$") -> None:
    """Raise :class:`SchemaError` at the first place ``value`` does not match ``schema``."""
    if "anyOf" in schema:
        errors = []
        for alt in schema["anyOf"]:
            try:
                check(value, alt, path)
                return
            except SchemaError as e:
                errors.append(str(e))
        raise SchemaError(errors[0])
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(f"{path}: {value!r} is not one of {schema['enum']}")
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_is(value, n) for n in names):
            raise SchemaError(f"{path}: expected {' or '.join(names)}, got {type(value).__name__}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                raise SchemaError(f"{path}: missing field {name!r}")
        for name, sub in value.items():
            if name in props:
                check(sub, props[name], f"{path}.{name}")
            elif schema.get("additionalProperties", True) is False:
                raise SchemaError(f"{path}: unexpected field {name!r}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            check(item, schema["items"], f"{path}[{i}]")
    elif isinstance(value, str) and "pattern" in schema:
        if not re.search(schema["pattern"], value):
            raise SchemaError(f"{path}: {value!r} does not match {schema['pattern']}")
    elif _is(value, "number") and "minimum" in schema and value < schema["minimum"]:
        raise SchemaError(f"{path}: {value} is below the minimum {schema['minimum']}")


def _v1_case(case: dict, machine: dict) -> None:
    """Give a version-1 bench case the version-2 fields, in place."""
    server, lg = case.get("server"), case.get("loadgen")
    cpu = None
    if server is not None and "cpu_percent" in server:
        pins = case.get("pin") or {}
        limit = float(len(pins.get("server") or machine.get("affinity") or [0]))
        pct = server.pop("cpu_percent")
        cpu = {"cores": pct / 100, "percent": pct, "cpu_s": None, "limit_cores": limit,
               "quota": None, "source": "v1-sampled", "gap_s": None}
        server.pop("cpu_s", None)
        for row in server.get("series", []):
            row.pop("cpu_s", None)
    case["cpu"] = {"server": cpu, "loadgen": None, "series": {"server": [], "loadgen": []}}
    case["window"] = None
    defects = []
    if cpu is not None and cpu["cores"] > 1.05 * cpu["limit_cores"]:
        defects.append(f"server CPU {cpu['percent']:.0f}% > {100 * cpu['limit_cores']:.0f}% "
                       "it may use (version-1 sampling)")
    case["measurement_defects"] = defects
    if case.get("loadgen_proc"):
        case["loadgen_proc"] = {"peak_rss": case["loadgen_proc"]["peak_rss"]}
    if lg is not None:
        reason = lg.pop("saturation_reason", None) or ""
        lg.pop("saturated", None)
        own = [r for r in reason.split("; ") if r.startswith("worker ")]
        lg["limit"] = {"bound": bool(own), "reasons": own}
        lg.setdefault("window", None)
    case["verdict"] = verdict.judge(case, verdict.SLO())


def upgrade(run: Any) -> Any:
    """A version-1 run as version 2 (in place); any other document unchanged."""
    if isinstance(run, dict) and run.get("schema") == 1:
        if run.get("kind") == "bench":
            for case in run.get("cases") or []:
                if isinstance(case, dict):
                    _v1_case(case, run.get("machine") or {})
        run["schema"] = VERSION
        run["upgraded_from"] = 1
    return run


def check_document(doc: Any, envelope: dict, case_schema: dict) -> None:
    """Raise :class:`SchemaError` where ``doc`` is not a current-version document with
    ``envelope``'s fields and every case matching ``case_schema``."""
    if not isinstance(doc, dict) or doc.get("schema") != VERSION:
        raise SchemaError(f"$.schema: not a version {VERSION} document")
    check(doc, envelope)
    for i, case in enumerate(doc["cases"]):
        check(case, case_schema, f"$.cases[{i}]")


def validate(run: Any) -> None:
    """Check a whole run document: the envelope, then each case against its kind's schema."""
    if not isinstance(run, dict):
        raise SchemaError(f"$: expected a JSON object, got {type(run).__name__}")
    if run.get("schema") != VERSION:
        raise SchemaError(f"$.schema: version {run.get('schema')!r}, this code reads "
                          f"{' and '.join(map(str, READABLE))}")
    check(run, RUN)
    if run["kind"] not in ("bench", "micro"):
        return  # regress and units cases: results/regress.py and results/units.py check them
    case_schema = BENCH_CASE if run["kind"] == "bench" else MICRO_CASE
    for i, case in enumerate(run["cases"]):
        path = f"$.cases[{i}]"
        check(case, case_schema, path)
        if run["kind"] == "bench" and case["status"] == "ok":
            check(case, BENCH_CASE_OK, path)
