"""Units runs: what one goroutine, task, greenlet, thread and process cost, and why the
bench bends where it does.

A units run (written by ``runner.py units``) is a run document with ``kind: "units"``: the
envelope of every run (``results/SCHEMA.md``) and one case per unit, checked against
:data:`CASE`. This module keeps its own validator, loader and saver until the run schema
knows the kind; ``store.list_runs`` skips units runs meanwhile.

A units case: ``unit`` (goroutine, asyncio, gevent, thread, thread-256k, process),
``label``, ``strategy`` (the bench strategy with one such unit per connection, or null);
``create`` {``n`` units per value, ``values`` µs per unit, ``cpu_values`` CPU µs per unit};
``switch`` {``n`` round trips per value, ``values`` µs per switch (one hop; a round trip is
two), ``cpu_values`` CPU µs per switch, ``kernel_switches`` per switch, one per value};
``memory`` {``metric`` rss|pss, ``n`` units parked, ``values`` bytes per unit, one per
process, ``kernel_values`` the machine's KernelStack + PageTables growth per unit}; ``hold``
(null when not run) {``held``, ``stop`` {``kind`` memory|time|tasks|machine|limit,
``detail``}, ``seconds``, ``bytes`` grown, ``left`` threads or processes alive after
release, ``budget`` {``bytes``, ``seconds``, ``tasks``, ``floor``}}; ``errors`` (one line
per failed worker).

:func:`why_rows` / :func:`why_table` put each unit's medians beside what the seeds claim and
beside the bench's own memory per connection of the strategy built from that unit (from a
bench run, when one is given); :func:`plot` draws the same as log-scale bars.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tabulate import tabulate  # noqa: E402

from common.files import atomic_write  # noqa: E402
from results import schema, store  # noqa: E402

KIND = "units"
STOPS = ["memory", "time", "tasks", "machine", "limit"]

NUMS = {"type": "array", "items": schema.NUM}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict:
    return {"type": "object", "properties": props,
            "required": list(props) if required is None else required}


HOLD = _obj({
    "held": schema.INT,
    "stop": _obj({"kind": {"enum": STOPS}, "detail": schema.STR}),
    "seconds": schema.NUM,
    "bytes": schema.NUM,
    "left": schema.INT,
    "budget": _obj({"bytes": schema.INT, "seconds": schema.NUM, "tasks": schema.INT,
                    "floor": schema.INT}),
})

CASE = _obj({
    "unit": schema.STR,
    "label": schema.STR,
    "strategy": schema.STR_OR_NULL,
    "create": _obj({"n": schema.INT_OR_NULL, "values": NUMS, "cpu_values": NUMS},
                   required=["n", "values"]),
    "switch": _obj({"n": schema.INT_OR_NULL, "values": NUMS, "cpu_values": NUMS,
                    "kernel_switches": NUMS}, required=["n", "values", "kernel_switches"]),
    "memory": _obj({"metric": {"enum": ["rss", "pss"]}, "n": schema.INT_OR_NULL,
                    "values": NUMS, "kernel_values": NUMS}),
    "hold": {"anyOf": [HOLD, {"type": "null"}]},
    "errors": {"type": "array", "items": schema.STR},
})

RUN = {**schema.RUN, "properties": {**schema.RUN["properties"], "kind": {"enum": [KIND]}}}

# What the seeds (shared/seeds/) claim, per unit. Numbers as ranges for the plot; text for
# the table. "Tens of ns" is 10-100 ns; "a few µs" 1-10 µs.
CLAIMS: dict[str, dict[str, Any]] = {
    "goroutine": {
        "create_us": (0.01, 0.1), "switch_us": (0.01, 0.1), "memory": (2048, 2048),
        "kernel_switches": (0, 0), "held": (1e3, 1e6),
        "text": "2 KB stack (1/500 of a thread's); create and switch in tens of ns, no "
                "syscall, no kernel switch; 100k ≈ 200 MB; thousands to millions",
    },
    "thread": {
        "create_us": (1, 10), "switch_us": (1, 10), "memory": (1 << 20, 1 << 20),
        "text": "~1 MB stack; create and switch take a few µs, a syscall each",
    },
    "process": {
        "text": "fork copies the parent's state; a switch also changes address space: "
                "slower than a thread's",
    },
}
CLAIMS["thread-256k"] = CLAIMS["thread"]


# ---------------------------------------------------------------- run files


def new_run(config: dict) -> dict:
    """A fresh units run document: the envelope of every run, ``kind: "units"``."""
    return store.new_run(KIND, config)


def validate(run: Any, where: str = "units run") -> None:
    """Raise ``store.RunFileError`` naming ``where`` and the first field that is wrong."""
    try:
        schema.check_document(run, RUN, CASE)
    except schema.SchemaError as e:
        raise store.RunFileError(f"{where}: not a valid units run ({e})") from None


def save(run: dict, out_dir: Path | None = None) -> Path:
    """Validate and atomically write ``run`` to ``<out_dir or RUNS_DIR>/<id>.json``."""
    validate(run, f"units run {run.get('id', '?')}")
    target = Path(out_dir or store.RUNS_DIR) / f"{run['id']}.json"
    atomic_write(json.dumps(run, indent=1, allow_nan=False).encode(), target)
    return target


def _read(path: Path) -> dict:
    try:
        run = json.loads(Path(path).read_text())
    except OSError as e:
        raise store.RunFileError(f"{path}: cannot read ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise store.RunFileError(f"{path}: not JSON (line {e.lineno}: {e.msg})") from None
    validate(run, str(path))
    return run


def load(ref: str) -> tuple[dict, Path]:
    """A units run by path, id, or ``latest`` (the newest units run in ``RUNS_DIR``)."""
    path = Path(ref)
    if ref == "latest":
        for path in sorted(store.RUNS_DIR.glob("*.json"), reverse=True):  # ids sort by time
            try:
                return _read(path), path
            except store.RunFileError:
                continue
        raise store.RunFileError(f"no units run in {store.RUNS_DIR} (run `runner.py units`)")
    if not path.is_file():
        path = store.RUNS_DIR / f"{ref}.json"
    if not path.is_file():
        raise store.RunFileError(f"no units run {ref!r} (give a path, an id or 'latest')")
    return _read(path), path


def bench_memory(bench_run: dict) -> dict[str, dict]:
    """``{strategy: {"bytes", "connections", "metric"}}``: the median memory per connection
    of each strategy's ok cases at the largest connection count it has one at."""
    by: dict[str, dict[int, list[dict]]] = {}
    for c in bench_run.get("cases", []):
        mpc = c.get("mem_per_conn") or {}
        if c.get("status") == "ok" and isinstance(mpc.get("bytes"), int | float):
            by.setdefault(c["key"]["strategy"], {}).setdefault(c["key"]["connections"],
                                                               []).append(mpc)
    out = {}
    for strategy, at in by.items():
        n = max(at)
        out[strategy] = {"bytes": statistics.median(m["bytes"] for m in at[n]),
                         "connections": n, "metric": at[n][0]["metric"]}
    return out


# ---------------------------------------------------------------- the why table


def _med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def medians(case: dict) -> dict[str, float | None]:
    """The case's figures: medians over its values (None where none was measured)."""
    hold = case["hold"]
    return {
        "create_us": _med(case["create"]["values"]),
        "create_cpu_us": _med(case["create"].get("cpu_values", [])),
        "switch_us": _med(case["switch"]["values"]),
        "switch_cpu_us": _med(case["switch"].get("cpu_values", [])),
        "kernel_switches": _med(case["switch"]["kernel_switches"]),
        "memory": _med(case["memory"]["values"]),
        "kernel_memory": _med(case["memory"]["kernel_values"]),
        "held": hold["held"] if hold else None,
    }


def fmt_bytes(b: float | None) -> str:
    if b is None:
        return "—"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(b) >= size:
            return f"{b / size:.3g} {unit}"
    return f"{b:.0f} B"


def fmt_us(us: float | None, cpu: float | None = None) -> str:
    """µs to 3 significant digits; with ``cpu``, the CPU µs beside the wall µs."""
    if us is None:
        return "—"
    text = f"{us:.3g}" if us < 1000 else f"{us:,.0f}"
    return text if cpu is None else f"{text} (CPU {fmt_us(cpu)})"


def fmt_held(hold: dict | None) -> str:
    """``held (why it stopped)``; ``≥`` when a budget, not the machine, stopped it."""
    if hold is None:
        return "—"
    kind = hold["stop"]["kind"]
    at_least = "" if kind == "limit" else "≥ "
    why = hold["stop"]["detail"] if kind == "limit" else f"{kind} budget" if kind in (
        "memory", "time", "tasks") else "machine memory floor"
    return f"{at_least}{hold['held']:,} ({why})"


HEADERS = ["unit", "create µs (CPU µs)", "switch µs (CPU µs)", "kernel switches / switch",
           "memory / unit", "bench memory / conn", "most held", "the seeds claim"]


def why_rows(run: dict, bench: dict[str, dict] | None = None) -> list[list[str]]:
    """One row per unit, in :data:`HEADERS` order; ``bench`` from :func:`bench_memory`."""
    rows = []
    for case in run["cases"]:
        m = medians(case)
        mem = fmt_bytes(m["memory"])
        if m["memory"] is not None:
            mem += f" {case['memory']['metric']}"
            if m["kernel_memory"] is not None and m["kernel_memory"] >= 512:
                mem += f" + {fmt_bytes(m['kernel_memory'])} kernel"
        b = (bench or {}).get(case["strategy"] or "")
        bench_txt = (f"{fmt_bytes(b['bytes'])} {b['metric']} ({case['strategy']} @ "
                     f"{b['connections']:,})" if b else "—")
        ks = m["kernel_switches"]
        rows.append([
            case["label"], fmt_us(m["create_us"], m["create_cpu_us"]),
            fmt_us(m["switch_us"], m["switch_cpu_us"]),
            "—" if ks is None else f"{ks:.2f}", mem, bench_txt, fmt_held(case["hold"]),
            CLAIMS.get(case["unit"], {}).get("text", "—"),
        ])
    return rows


def why_table(run: dict, bench: dict[str, dict] | None = None, fmt: str = "simple") -> str:
    """The why table as text (``fmt``: a tabulate format, e.g. ``github`` for Markdown)."""
    wrap = None if fmt == "github" else [None] * 7 + [40]  # a Markdown cell is one line
    return tabulate(why_rows(run, bench), headers=HEADERS, tablefmt=fmt,
                    disable_numparse=True, maxcolwidths=wrap)


# ---------------------------------------------------------------- the plot

PANELS = [
    ("create_us", "create + exit, µs per unit", "µs"),
    ("switch_us", "switch: one hop of a ping-pong, µs", "µs"),
    ("memory", "memory per parked unit (RSS; PSS for processes)", "bytes"),
    ("held", "most held within the budget", "units"),
]
CLAIM_COLOR = "darkorange"


def _bar_text(field: str, v: float, m: dict, case: dict) -> str:
    if field == "memory":
        k = m["kernel_memory"]
        return fmt_bytes(v) + (f" + {fmt_bytes(k)} kernel" if k and k >= 512 else "")
    if field == "held":
        hold = case["hold"]
        return f"{'' if hold['stop']['kind'] == 'limit' else '≥'}{v:,.0f} ({hold['stop']['kind']})"
    text = f"{fmt_us(v)} µs"
    if field == "switch_us" and m["kernel_switches"] is not None:
        text += f", {m['kernel_switches']:.2f} kernel switches"
    return text


def _claim(ax, y: float, lo_hi: tuple[float, float]) -> None:
    """The seeds' claim under bar ``y``: a span for a range, a tick for one figure."""
    lo, hi = lo_hi
    if hi <= 0:
        return
    if hi > lo:
        ax.plot([lo, hi], [y + 0.4] * 2, color=CLAIM_COLOR, lw=4, solid_capstyle="butt",
                label="the seeds claim")
    else:
        ax.plot([lo], [y + 0.4], marker="|", ms=14, mew=3, color=CLAIM_COLOR,
                label="the seeds claim")


def plot(run: dict, path: Path, bench: dict[str, dict] | None = None) -> Path:
    """Four log-scale bar panels (create, switch, memory, most held), one bar per unit, with
    the seeds' claims in orange under the bars, kernel memory hatched after the memory bars
    and the bench's memory per connection of the unit's strategy as black diamonds."""
    cases = run["cases"]
    labels = [c["label"] for c in cases]
    figs = [medians(c) for c in cases]
    fig, axes = plt.subplots(2, 2, figsize=(14, 8))
    ys = list(range(len(cases)))
    for ax, (field, title, unit) in zip(axes.flat, PANELS, strict=True):
        vals = [f[field] if f[field] and f[field] > 0 else math.nan for f in figs]
        colors = [f"C{i}" for i in ys]
        ends = vals
        if field == "memory":
            ends = [v + max(f["kernel_memory"] or 0, 0) for v, f in zip(vals, figs, strict=True)]
            ax.barh(ys, ends, color=colors, alpha=0.35, hatch="//", height=0.6,
                    label="+ kernel (stacks, page tables)")
        ax.barh(ys, vals, color=colors, height=0.6)
        cpu = [f.get(field.replace("_us", "_cpu_us")) if field.endswith("_us") else None
               for f in figs]
        if any(cpu):
            ax.barh(ys, [c if c and c > 0 else math.nan for c in cpu], color="black",
                    height=0.15, label="CPU time (what load on the machine moves least)")
        for y, v, end, m, c in zip(ys, vals, ends, figs, cases, strict=True):
            if not math.isnan(v):
                ax.annotate(_bar_text(field, v, m, c), (end, y), xytext=(3, 0),
                            textcoords="offset points", va="center", fontsize=8)
            lo_hi = CLAIMS.get(c["unit"], {}).get(field)
            if lo_hi:
                _claim(ax, y, lo_hi)
            b = (bench or {}).get(c["strategy"] or "")
            if field == "memory" and b:
                ax.plot([b["bytes"]], [y], marker="D", color="black", ms=6, ls="none",
                        label="the bench's memory per connection")
        ax.set_xscale("log")
        ax.set_yticks(ys, labels, fontsize=8)
        ax.set_ylim(len(cases) - 0.4, -0.6)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(unit, fontsize=8)
        ax.grid(axis="x", which="major", alpha=0.3)
        shown = [x for x in ends if x > 0] + [x for c in cases for x in
                                                CLAIMS.get(c["unit"], {}).get(field, ()) if x > 0]
        if shown:  # room on the right for the labels
            ax.set_xlim(min(shown) / 2, max(shown) * (300 if field == "switch_us" else 40))
    legend: dict = {}
    for ax in axes.flat:
        for h, name in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(name, h)
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=len(legend) or 1,
               fontsize=8, frameon=False)
    m = run["machine"]
    fig.suptitle(f"What one unit costs: {m['cpu_model']}, {m['cores_logical']} cores, "
                 f"{m['python']}, run {run['id']} (log scales)", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
