"""``make bench``: every performance target of the project, in one run.

Runs, one after the other (never two at once: they would share the CPUs):

1. ``run.py``            requests/s under uvicorn + wrk: the 3-cookie route (issue 2)
   and the ~30 KB HTML page (issue 4), two tables;
2. ``rewrite_bench.py``  in-process HtmlRewriter MB/s and the 200 MB streaming peak
   memory (issue 4);
3. ``records_bench.py``  consent POSTs/s with every record persisted vs a bare
   endpoint (issue 5).

Each writes its figures and targets to ``benchmarks/results/<name>.json``; this
driver reads them and prints one summary table of every target (measured,
target, met / missed), and writes it to ``benchmarks/results/all.json``.

    .venv/bin/python benchmarks/all.py             # the full run (~8 min)
    .venv/bin/python benchmarks/all.py --quick     # smoke test (~1.5 min)
    .venv/bin/python benchmarks/all.py --only run,records

Exit status: 0 when every benchmark ran (targets missed or not; records_bench's
own exit 1 below its target is not an error here), 1 when one could not run at
all (crashed, wrk missing, no results written), or, with ``--strict``, when a
target was missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"

console = Console(highlight=False, width=None if sys.stdout.isatty() else 132)


@dataclass(frozen=True)
class Part:
    key: str
    script: str
    title: str
    #: arguments of the full run and of --quick; the JSON path is appended
    args: tuple[str, ...]
    quick: tuple[str, ...]
    json_flag: str


PARTS = (
    # --noop: the no-op middleware and the floor gate, the context of issue 2's ratio
    Part("run", "run.py", "requests/s under uvicorn + wrk (issues 2 and 4)", ("--noop",),
         ("--quick",), "--output"),
    Part("rewrite", "rewrite_bench.py", "HtmlRewriter in-process (issue 4)", (), ("--quick",),
         "--json"),
    Part("records", "records_bench.py", "consent records under uvicorn + wrk (issue 5)", (),
         ("--rounds", "1", "--duration", "2"), "--json"),
)  # fmt: skip


@dataclass
class Outcome:
    part: Part
    returncode: int
    seconds: float
    result: dict[str, Any] | None

    @property
    def ran(self) -> bool:
        return self.result is not None and bool(self.result.get("targets"))


def run_part(part: Part, quick: bool, results: Path) -> Outcome:
    out = results / f"{part.key}.json"
    with contextlib.suppress(FileNotFoundError):
        out.unlink()  # a stale file must not pass for this run's figures
    cmd = [
        sys.executable,
        str(BENCH_DIR / part.script),
        *(part.quick if quick else part.args),
        part.json_flag,
        str(out),
    ]
    console.rule(f"[bold]{part.script}[/]: {part.title}")
    console.print(" ".join(["python", *cmd[1:]]), style="dim")
    sys.stdout.flush()
    t0 = time.monotonic()
    try:
        code = subprocess.run(cmd, cwd=ROOT, check=False).returncode
    except OSError as exc:
        console.print(f"[red]could not start {part.script}: {exc}[/]")
        code = -1
    seconds = time.monotonic() - t0
    result: dict[str, Any] | None = None
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        result = json.loads(out.read_text())
    return Outcome(part, code, seconds, result)


def _load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def _value(t: dict[str, Any]) -> str:
    v = t.get("value")
    if v is None:
        return "-"
    unit = t.get("unit", "")
    if unit == "x":
        return f"{v:.3f}x"
    if unit == "records":
        return f"{v:,.0f}"
    return f"{v:.2f} {unit}" if unit == "MB" else f"{v:.0f} {unit}"


def _target(t: dict[str, Any]) -> str:
    unit = t.get("unit", "")
    if unit == "x":
        return f"{t['op']} {t['target']:.2f}x"
    if unit == "records":
        return "= 2xx responses"
    return f"{t['op']} {t['target']:g} {unit}"


def summary(outcomes: Sequence[Outcome], meta: dict[str, Any]) -> Table:
    table = Table(
        title=(
            f"cookiegate: every performance target ({meta['mode']} run, commit {meta['git']}, "
            f"load {meta['load_before']} before / {meta['load_after']} after, "
            f"{meta['seconds']:.0f} s)"
        ),
        title_justify="left",
    )
    table.add_column("part", no_wrap=True)
    table.add_column("issue", justify="right")
    table.add_column("what")
    table.add_column("measured", justify="right", no_wrap=True)
    table.add_column("target", justify="right", no_wrap=True)
    table.add_column("", justify="center", no_wrap=True)
    table.add_column("detail", style="dim")
    for o in outcomes:
        if not o.ran:
            table.add_row(
                o.part.key,
                "",
                "[red]could not run[/]",
                "-",
                "-",
                "[red]ERROR[/]",
                f"exit {o.returncode}, no results written",
            )
            continue
        assert o.result is not None
        for t in o.result["targets"]:
            met = t.get("met")
            verdict = "-" if met is None else ("[green]met[/]" if met else "[red]MISSED[/]")
            table.add_row(
                o.part.key,
                str(t.get("issue", "")),
                t["label"],
                _value(t),
                _target(t),
                verdict,
                t.get("detail", ""),
            )
    return table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: every part in its quick form")
    p.add_argument(
        "--only",
        default=",".join(x.key for x in PARTS),
        help="comma-separated parts to run: run, rewrite, records (default all)",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    p.add_argument("--results", type=Path, default=RESULTS, help="where the JSON files go")
    opts = p.parse_args(argv)
    keys = [k.strip() for k in opts.only.split(",") if k.strip()]
    unknown = set(keys) - {x.key for x in PARTS}
    if unknown or not keys:
        p.error(f"--only: unknown part(s) {sorted(unknown)}; choose from run, rewrite, records")
    opts.parts = [x for x in PARTS if x.key in keys]
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    opts.results.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if opts.quick else "full",
        "git": _git(),
        "load_before": _load(),
        "cpus": os.cpu_count(),
    }
    t0 = time.monotonic()
    outcomes = [run_part(part, opts.quick, opts.results) for part in opts.parts]
    meta["seconds"] = time.monotonic() - t0
    meta["load_after"] = _load()
    console.print()
    console.print(summary(outcomes, meta))
    targets = [t for o in outcomes if o.ran and o.result for t in o.result["targets"]]
    missed = [t for t in targets if not t.get("met")]
    broken = [o.part.script for o in outcomes if not o.ran]
    if opts.quick:
        console.print("[yellow]--quick: a smoke test, not a measurement.[/]")
    console.print(
        f"{len(targets) - len(missed)} of {len(targets)} targets met"
        + (f"; [red]could not run: {', '.join(broken)}[/]" if broken else "")
        + f". Load average (1/5/15 min) {meta['load_before']} before, {meta['load_after']} "
        f"after, on {meta['cpus']} CPUs. Wrote {opts.results.name}/all.json"
    )
    (opts.results / "all.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "parts": [
                    {
                        "key": o.part.key,
                        "script": o.part.script,
                        "returncode": o.returncode,
                        "seconds": o.seconds,
                        "ran": o.ran,
                    }
                    for o in outcomes
                ],
                "targets": targets,
                "pass": not missed and not broken,
            },
            indent=2,
        )
        + "\n"
    )
    if broken:
        return 1
    if opts.strict and missed:
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted.[/]")
        sys.exit(130)
