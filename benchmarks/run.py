"""Requests/s under uvicorn + wrk on 127.0.0.1 (part of ``make bench``), two tables:

* ``cookies`` (``GET /``, a non-HTML response with three Set-Cookie headers): a
  bare Starlette app, the same app behind cookiegate (a visitor who accepted, one
  who refused) and behind Starlette's SessionMiddleware;
* ``page`` (``GET /page``, the ~30 KB shop page of ``pages.py`` as text/html): the
  bare app, cookiegate for a visitor who granted every category (settings control
  injected, nothing rewritten) and for an undecided one (banner + tracking
  rewriter).

Each round measures every configuration twice: *sequential* (each server alone
on the server CPU, the configurations interleaved, order rotated per round) for
absolute requests/s, and *paired* (each configuration at the same time as a bare
server on the same CPU, plus a bare-vs-bare control) for a ratio that machine
noise cannot skew. The report gives median requests/s and the median per-round
ratios to the bare app; the verdicts use the paired ratios. See
``benchmarks/README.md``.

    .venv/bin/python benchmarks/run.py                 # 4 rounds x 5 s (default, ~5 min)
    .venv/bin/python benchmarks/run.py --quick         # 1 round x 2 s, smoke test
    .venv/bin/python benchmarks/run.py --rounds 9 --duration 10 --mode paired
    .venv/bin/python benchmarks/run.py --group page    # only the page table
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import http.client
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import apps
from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DEFAULT_OUTPUT = BENCH_DIR / "results" / "latest.json"
HOST = "127.0.0.1"

#: cookiegate must keep at least this fraction of the bare app's requests/s.
TARGET_RATIO = 0.95
#: ... per configuration (issue 2: the 3-cookie route; issue 4: the HTML page).
TARGETS: dict[str, float] = {
    "cg_accept": TARGET_RATIO,
    "cg_refuse": TARGET_RATIO,
    "page_accept": 0.95,
    "page_undecided": 0.25,
}

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)

WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d,"
    .. "\"err_connect\":%d,\"err_read\":%d,\"err_write\":%d,\"err_status\":%d,\"err_timeout\":%d,"
    .. "\"lat_mean_us\":%.1f,\"lat_p50_us\":%d,\"lat_p99_us\":%d,\"lat_max_us\":%d}\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


# -- configurations -----------------------------------------------------------


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    #: attribute of ``apps`` that the uvicorn server serves
    server: str
    cookie: str
    path: str = "/"
    #: the table it belongs to (:data:`GROUPS`)
    group: str = "cookies"


@dataclass(frozen=True)
class Group:
    """One table: configurations compared with the same bare reference."""

    key: str
    title: str
    #: the configuration every other one of the group is compared with
    reference: str
    #: key of the A/A control pair (reference vs a second bare server, same path)
    control: str


GROUPS: dict[str, Group] = {
    "cookies": Group("cookies", "GET / (text/plain, 3 Set-Cookie)", "bare", "control"),
    "page": Group("page", "GET /page (~30 KB HTML page)", "page_bare", "page_control"),
}


def make_configs(noop: bool = False, groups: Sequence[str] = ("cookies", "page")) -> list[Config]:
    # the policy of apps.GATE has one optional category, `performance` (the
    # tracker catalogue's marketing/functional entries fold into it), so
    # ["performance"] grants every category: consent complete, nothing to rewrite
    every = list(apps.GATE.policy.optional)
    accept = apps.request_cookie(every)
    refuse = apps.request_cookie([])
    undecided = apps.request_cookie(None)
    extra = (
        [
            Config("noop", "no-op middleware", "noop", accept),
            Config("floor", "floor gate (see apps.py)", "floor", accept),
        ]
        if noop
        else []
    )
    out: list[Config] = []
    if "cookies" in groups:
        out += [
            Config("bare", "bare Starlette", "bare", accept),
            *extra,
            Config("cg_accept", "cookiegate, accepted", "gated", accept),
            Config("cg_refuse", "cookiegate, refused", "gated", refuse),
            Config("session", "SessionMiddleware", "with_session", accept),
        ]
    if "page" in groups:
        out += [
            Config("page_bare", "page: bare", "bare", accept, "/page", "page"),
            *(
                [
                    Config(
                        "page_floor",
                        "page: floor gate",
                        "floor",
                        accept,
                        "/page",
                        "page",
                    )
                ]
                if noop
                else []
            ),
            Config("page_accept", "page: cookiegate, accepted", "gated", accept, "/page", "page"),
            *(
                [
                    Config(
                        "page_own_link",
                        "page: accepted, settings_control=False",
                        "gated_own_link",
                        accept,
                        "/page",
                        "page",
                    )
                ]
                if noop
                else []
            ),
            Config(
                "page_undecided", "page: cookiegate, undecided", "gated", undecided, "/page", "page"
            ),
        ]
    return out


# -- servers --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if run.py dies without cleaning up
    (e.g. SIGKILL), so no server outlives the benchmark. Linux only; best effort."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)


class Server:
    """One uvicorn process serving ``apps:<attr>`` on 127.0.0.1."""

    def __init__(
        self, name: str, attr: str, cpu: int | None, uvicorn_opts: Sequence[str], logdir: Path
    ) -> None:
        self.name = name
        self.attr = attr
        self.cpu = cpu
        self.uvicorn_opts = list(uvicorn_opts)
        self.port = 0
        self.log_path = logdir / f"uvicorn-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: TextIO | None = None

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.port}{path}"

    def start(self) -> None:
        self.port = _free_port()
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            f"apps:{self.attr}",
            "--app-dir",
            str(BENCH_DIR),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
            *self.uvicorn_opts,
        ]
        if self.cpu is not None:
            cmd = ["taskset", "-c", str(self.cpu), *cmd]
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            # the same hash seed in every server: dict/set layouts (and their speed) do
            # not differ between two processes serving the same app
            env={**os.environ, "PYTHONHASHSEED": "0"},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches run.py only; run.py stops us
            preexec_fn=_die_with_parent,  # run.py is single-threaded, so this is safe
        )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, cookie: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn apps:{self.attr} exited:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _, _ = fetch(self.port, cookie)
                if status == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"uvicorn apps:{self.attr} not ready after {timeout:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


def fetch(port: int, cookie: str, path: str = "/") -> tuple[int, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", path, headers={"Cookie": cookie})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, [(k.lower(), v) for k, v in resp.getheaders()], body
    finally:
        conn.close()


def _is_deletion(set_cookie: str) -> bool:
    attrs = [a.strip().lower() for a in set_cookie.split(";")[1:]]
    return "max-age=0" in attrs or any(a.startswith("expires=thu, 01 jan 1970") for a in attrs)


#: the GA4 loader of pages.py as the app sends it (untouched when nothing is blocked)
GA_TAG = b'<script async src="https://www.googletagmanager.com/gtag/js?id=G-ABC123XYZ9">'
GA_SRC = b"https://www.googletagmanager.com/gtag/js?id=G-ABC123XYZ9"


def check_page(cfg: Config, status: int, headers: list[tuple[str, str]], body: bytes) -> int:
    """The page checks; returns the number of neutralised elements."""
    problems = []
    ctype = ", ".join(v for k, v in headers if k == "content-type")
    if status != 200 or not ctype.startswith("text/html"):
        problems.append(f"status {status}, content-type {ctype!r}")
    blocked = body.count(b"data-cg-blocked=")
    banner = b'id="cookiegate-banner"' in body
    settings = b'id="cookiegate-settings"' in body and b'data-cg-mode="settings"' in body
    if cfg.key == "page_bare" and body != apps.PAGE:
        problems.append(f"body is not pages.shop_page() ({len(body)} bytes)")
    if cfg.key == "page_own_link":
        vary = ", ".join(v for k, v in headers if k == "vary")
        if body != apps.PAGE or "Cookie" not in vary:
            problems.append(f"expected the page as written and Vary: Cookie ({vary!r})")
    if cfg.key in ("page_accept", "page_floor"):
        if len(body) <= len(apps.PAGE) or not body.endswith(b"</body>\n</html>\n"):
            problems.append(f"expected the page with a control inserted ({len(body)} bytes)")
        if not settings or banner:
            problems.append("expected the settings control and no banner")
        if GA_TAG not in body or blocked:
            problems.append(f"expected the GA tag untouched and nothing blocked ({blocked})")
    if cfg.key == "page_undecided":
        if not banner:
            problems.append("expected the banner")
        length = ", ".join(v for k, v in headers if k == "content-length")
        if length != str(len(body)):  # rewritten, and still sent with its exact length
            problems.append(f"expected Content-Length {len(body)}, got {length!r}")
        # the GA loader's tag: neutralised (data-cg-blocked, src renamed data-cg-src)
        at = body.find(GA_SRC)
        start = body.rfind(b"<script", 0, at) if at >= 0 else -1
        tag = body[start : body.find(b">", at) + 1] if start >= 0 else b""
        if GA_TAG in body or b"data-cg-blocked=" not in tag or b" src=" in tag:
            problems.append(f"expected the GA script neutralised, got {tag[:160]!r}")
    if problems:
        raise RuntimeError(f"{cfg.label}: " + "; ".join(problems))
    return blocked


def check_response(cfg: Config, port: int) -> dict[str, Any]:
    """Make sure each configuration does what the benchmark claims it does.
    Returns a few facts about the response (for the report)."""
    status, headers, body = fetch(port, cfg.cookie, cfg.path)
    facts: dict[str, Any] = {"body_bytes": len(body)}
    if cfg.group == "page":
        facts["neutralised"] = check_page(cfg, status, headers, body)
        return facts
    problems = []
    if status != 200 or body != b"ok":
        problems.append(f"status {status}, body {body[:40]!r}")
    cookies = [v for k, v in headers if k == "set-cookie"]
    kept = sorted(v.split("=", 1)[0] for v in cookies if not _is_deletion(v))
    deleted = sorted(v.split("=", 1)[0] for v in cookies if _is_deletion(v))
    vary = ", ".join(v for k, v in headers if k == "vary").lower()
    if cfg.key in ("bare", "cg_accept", "session", "noop", "floor"):
        if kept != ["_ga", "ab_variant", "session"] or deleted:
            problems.append(f"expected session, _ga, ab_variant; got {cookies}")
    elif cfg.key == "cg_refuse" and (kept != ["session"] or deleted != ["_ga"]):
        problems.append(f"expected session + an expiry of _ga; got {cookies}")
    if cfg.key in ("cg_accept", "cg_refuse", "noop", "floor") and "cookie" not in vary:
        problems.append(f"expected Vary: Cookie, got {vary!r}")
    if cfg.key == "session":
        fresh = next((v for v in cookies if v.startswith("session=")), "")
        if not fresh.startswith("session=") or "max-age=" not in fresh.lower():
            problems.append(f"SessionMiddleware did not re-sign the session: {cookies}")
    if problems:
        raise RuntimeError(f"{cfg.label}: " + "; ".join(problems))
    return facts


# -- load -----------------------------------------------------------------------


@dataclass
class Sample:
    #: "sequential" (alone on the server CPU) or "paired" (sharing it with bare)
    mode: str
    config: str
    round: int
    rps: float
    requests: int
    duration_s: float
    errors: dict[str, int]
    lat_mean_us: float
    lat_p50_us: int
    lat_p99_us: int
    lat_max_us: int
    #: paired mode: the configuration that ran at the same time on the same CPU
    partner: str | None = None


class Load:
    """Starts wrk processes (pinned to the client CPU) and reads their results."""

    def __init__(self, opts: argparse.Namespace, lua: Path, cpu: int | None) -> None:
        self.opts = opts
        self.lua = lua
        self.cpu = cpu

    def start(self, url: str, cookie: str, duration: int) -> subprocess.Popen[str]:
        cmd = [
            "wrk",
            f"-t{self.opts.threads}",
            f"-c{self.opts.connections}",
            f"-d{duration}s",
            "--timeout",
            "5s",
            "-s",
            str(self.lua),
            "-H",
            f"Cookie: {cookie}",
            url,
        ]
        if self.cpu is not None:
            cmd = ["taskset", "-c", str(self.cpu), *cmd]
        return subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    @staticmethod
    def finish(proc: subprocess.Popen[str], duration: int) -> dict[str, Any]:
        try:
            stdout, stderr = proc.communicate(timeout=duration + 60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for line in stdout.splitlines():
            if line.startswith("WRKJSON "):
                data: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
                return data
        raise RuntimeError(f"wrk failed (exit {proc.returncode}):\n{stdout}\n{stderr}")

    def run(self, jobs: Sequence[tuple[str, str]], duration: int) -> list[dict[str, Any]]:
        """Run one wrk per ``(url, cookie)`` job, all at the same time."""
        procs: list[subprocess.Popen[str]] = []
        try:
            for url, cookie in jobs:
                procs.append(self.start(url, cookie, duration))
            return [self.finish(p, duration) for p in procs]
        finally:
            for p in procs:  # on error or Ctrl-C: no wrk left behind
                if p.poll() is None:
                    p.kill()
                    p.wait()


def to_sample(
    data: dict[str, Any], mode: str, config: str, rnd: int, partner: str | None = None
) -> Sample:
    duration_s = data["duration_us"] / 1e6
    return Sample(
        mode=mode,
        config=config,
        round=rnd,
        rps=data["requests"] / duration_s if duration_s else 0.0,
        requests=int(data["requests"]),
        duration_s=duration_s,
        errors={k[4:]: int(v) for k, v in data.items() if k.startswith("err_") and v},
        lat_mean_us=float(data["lat_mean_us"]),
        lat_p50_us=int(data["lat_p50_us"]),
        lat_p99_us=int(data["lat_p99_us"]),
        lat_max_us=int(data["lat_max_us"]),
        partner=partner,
    )


def _progress(rnd: int, rounds: int, text: str, samples: Sequence[Sample]) -> None:
    errors = {k: v for s in samples for k, v in s.errors.items()}
    err = f"  [red]errors {errors}[/]" if errors else ""
    console.print(f"  round {rnd + 1}/{rounds}  {text}{err}")


# -- report ---------------------------------------------------------------------


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


@dataclass
class Summary:
    config: str
    label: str
    group: str = "cookies"
    # sequential: each configuration alone on the server CPU
    median_rps: float | None = None
    min_rps: float | None = None
    max_rps: float | None = None
    median_p99_us: float | None = None
    seq_ratios_to_bare: list[float] = field(default_factory=list)
    seq_ratio_to_bare: float | None = None
    seq_ratios_to_session: list[float] = field(default_factory=list)
    seq_ratio_to_session: float | None = None
    # paired: running at the same time as the bare app, on the same CPU
    paired_ratios_to_bare: list[float] = field(default_factory=list)
    paired_ratio_to_bare: float | None = None
    # what the verdict uses: paired when measured (less noisy), else sequential
    ratio_to_bare: float | None = None
    ratio_to_session: float | None = None
    added_us_per_request: float | None = None
    #: the target ratio to bare (``None``: a reference, no target)
    target: float | None = None
    errors: int = 0
    checks: dict[str, bool] = field(default_factory=dict)
    #: from the response check before measuring (body size, neutralised elements)
    response: dict[str, Any] = field(default_factory=dict)


def summarise(
    group: Group, configs: Sequence[Config], samples: Sequence[Sample]
) -> tuple[list[Summary], list[float]]:
    """Summaries of one group's configurations (``configs``), and its A/A control
    ratios (the reference vs a second bare server, paired). "bare" in the field
    names means the group's reference."""
    ref = group.reference
    keys = {c.key for c in configs}
    seq: dict[int, dict[str, Sample]] = {}
    paired: dict[str, list[float]] = {}
    for x in samples:
        if x.mode == "sequential" and x.config in keys:
            seq.setdefault(x.round, {})[x.config] = x
    by_pair: dict[tuple[int, str], dict[str, Sample]] = {}
    for x in samples:
        if x.mode == "paired":
            pair = x.partner if x.config == ref else x.config
            assert pair is not None
            if pair in keys or pair == group.control:
                by_pair.setdefault((x.round, pair), {})[x.config] = x
    for (_, pair), two in sorted(by_pair.items()):
        if two.get(ref) and two[ref].rps and pair in two:
            paired.setdefault(pair, []).append(two[pair].rps / two[ref].rps)

    has_session = "session" in keys
    out = []
    for cfg in configs:
        s = Summary(cfg.key, cfg.label, cfg.group, target=TARGETS.get(cfg.key))
        mine = [r[cfg.key] for r in seq.values() if cfg.key in r]
        if mine:
            rps = [x.rps for x in mine]
            s.median_rps, s.min_rps, s.max_rps = statistics.median(rps), min(rps), max(rps)
            s.median_p99_us = statistics.median(x.lat_p99_us for x in mine)
            s.seq_ratios_to_bare = [
                r[cfg.key].rps / r[ref].rps for r in seq.values() if cfg.key in r and r[ref].rps
            ]
            s.seq_ratio_to_bare = _median(s.seq_ratios_to_bare)
            if has_session:
                s.seq_ratios_to_session = [
                    r[cfg.key].rps / r["session"].rps
                    for r in seq.values()
                    if cfg.key in r and r["session"].rps
                ]
                s.seq_ratio_to_session = _median(s.seq_ratios_to_session)
        if cfg.key == ref:
            s.paired_ratios_to_bare = [1.0] * len(paired.get(group.control, []))
        else:
            s.paired_ratios_to_bare = paired.get(cfg.key, [])
        s.paired_ratio_to_bare = _median(s.paired_ratios_to_bare)
        s.errors = sum(sum(x.errors.values()) for x in samples if x.config == cfg.key)
        out.append(s)

    by_key = {s.config: s for s in out}
    session = by_key.get("session")
    bare_rps = by_key[ref].median_rps
    if bare_rps is None:  # paired only: bare had half of the CPU in every pair
        half = [x.rps for x in samples if x.mode == "paired" and x.config == ref]
        bare_rps = 2 * statistics.median(half) if half else None
    for s in out:
        if s.paired_ratio_to_bare is not None:
            s.ratio_to_bare = s.paired_ratio_to_bare
            if session is not None:
                s.ratio_to_session = _ratio(s.paired_ratio_to_bare, session.paired_ratio_to_bare)
        else:
            s.ratio_to_bare = s.seq_ratio_to_bare
            s.ratio_to_session = s.seq_ratio_to_session
        if bare_rps and s.ratio_to_bare and s.config != ref:
            s.added_us_per_request = 1e6 / bare_rps * (1 / s.ratio_to_bare - 1)
        if s.target is not None and s.ratio_to_bare is not None:
            s.checks = {"min_ratio_to_bare": s.ratio_to_bare >= s.target}
            if session is not None:
                s.checks["faster_than_session"] = (s.ratio_to_session or 0.0) > 1.0
    return out, paired.get(group.control, [])


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return ""
    return "[green]PASS[/]" if passed else "[red]MISS[/]"


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _with_range(value: float | None, values: Sequence[float]) -> str:
    text = _fmt(value, ".3f")
    if len(values) > 1 and len(set(values)) > 1:
        text += f"\n[dim]{min(values):.2f}..{max(values):.2f}[/]"
    return text


def render(
    group: Group, summaries: Sequence[Summary], control: Sequence[float], meta: dict[str, Any]
) -> dict[str, Any]:
    """Print one group's table and notes; returns the group's facts for the JSON."""
    modes = meta["modes"]
    ref = group.reference
    page = group.key == "page"
    has_session = any(s.config == "session" for s in summaries)
    table = Table(
        title=(
            f"cookiegate benchmark, {group.title}: {meta['rounds']} round(s) x "
            f"{meta['duration_s']} s per measurement ({' + '.join(modes)}); wrk "
            f"-t{meta['wrk']['threads']} -c{meta['wrk']['connections']}"
        ),
        title_justify="left",
    )
    table.add_column("configuration", no_wrap=True)
    if page:
        table.add_column("body\nKB", justify="right")
    if "sequential" in modes:
        table.add_column("req/s\nmedian", justify="right")
        table.add_column("req/s\nmin..max", justify="right", no_wrap=True)
        table.add_column("x bare\nsequential", justify="right", no_wrap=True)
    if "paired" in modes:
        table.add_column("x bare\npaired", justify="right", no_wrap=True)
    table.add_column("+µs/req\nvs bare", justify="right")
    if has_session:
        table.add_column("x\nsession", justify="right")
        table.add_column(f">= {TARGET_RATIO:.2f}x\nbare", justify="center", no_wrap=True)
        table.add_column("faster than\nsession", justify="center", no_wrap=True)
    else:
        table.add_column("target\nx bare", justify="right", no_wrap=True)
        table.add_column("met", justify="center", no_wrap=True)
    for s in summaries:
        row = [s.label + (f"\n[red]{s.errors} errors[/]" if s.errors else "")]
        if page:
            kb = s.response.get("body_bytes")
            row.append("-" if kb is None else f"{kb / 1000:.1f}")
        if "sequential" in modes:
            row += [
                _fmt(s.median_rps, ",.0f"),
                f"{_fmt(s.min_rps, ',.0f')}..{_fmt(s.max_rps, ',.0f')}",
                _with_range(s.seq_ratio_to_bare, s.seq_ratios_to_bare),
            ]
        if "paired" in modes:
            row.append(_with_range(s.paired_ratio_to_bare, s.paired_ratios_to_bare))
        row.append("" if s.config == ref else _fmt(s.added_us_per_request, "+.1f"))
        if has_session:
            row += [
                _fmt(s.ratio_to_session, ".3f"),
                _verdict(s.checks.get("min_ratio_to_bare") if s.checks else None),
                _verdict(s.checks.get("faster_than_session") if s.checks else None),
            ]
        else:
            row += [
                "" if s.target is None else f">= {s.target:.2f}",
                _verdict(s.checks.get("min_ratio_to_bare") if s.checks else None),
            ]
        table.add_row(*row)
    console.print()
    console.print(table)
    basis = "paired" if "paired" in modes else "sequential"
    if page:
        neutralised = next(
            (s.response.get("neutralised") for s in summaries if s.config == "page_undecided"),
            None,
        )
        lines = [
            "Targets (issue 4): the page behind cookiegate >= 0.95x the bare app's req/s for a "
            "visitor who granted every category (settings control injected by HtmlInjector, "
            "nothing rewritten) and >= 0.25x for an undecided visitor (banner + HtmlRewriter"
            + (f": {neutralised} elements neutralised" if neutralised is not None else "")
            + f"); verdicts use the {basis} ratios. The page goes out as one body message "
            "(Starlette Response); behind cookiegate it keeps an exact Content-Length.",
        ]
    else:
        lines = [
            f"Targets: cookiegate >= {TARGET_RATIO:.2f}x the bare app's req/s, and faster than "
            f"SessionMiddleware (x session > 1); verdicts use the {basis} ratios.",
        ]
    if "sequential" in modes:
        lines.append(
            "sequential: each server alone on its CPU, configurations interleaved; ratio = "
            "median of the per-round ratios."
        )
    if "paired" in modes:
        lines.append(
            "paired: each configuration served at the same time as a second bare server "
            "pinned to the same CPU (each gets half of it), so both see the same machine "
            "state; ratio = median over rounds of rps(config) / rps(bare)."
        )
    if page:
        lines.append(
            "+µs/req: server CPU time cookiegate adds per page, from the ratio and the bare "
            "page's req/s (sequential, else twice its paired req/s; one saturated worker)."
        )
    else:
        lines.append(
            "+µs/req: server CPU time the middleware adds per request, from the ratio and the "
            "bare app's req/s (sequential, else twice its paired req/s; one saturated "
            "worker). x session: ratio to "
            "SessionMiddleware (paired: ratio of the two paired ratios). SessionMiddleware: a "
            "valid session cookie is sent and the handler writes request.session, so it "
            "verifies and re-signs on every request."
        )
    for line in lines:
        console.print(line, style="dim")
    facts: dict[str, Any] = {}
    warnings = []
    bare = next(s for s in summaries if s.config == ref)
    margin = 1 - TARGET_RATIO
    if bare.median_rps and bare.min_rps is not None and bare.max_rps is not None:
        spread = (bare.max_rps - bare.min_rps) / bare.median_rps
        facts["bare_spread"] = spread
        if spread >= margin:
            warnings.append(
                f"Sequential: {bare.label}'s req/s varied by {spread:.0%} between rounds, more "
                f"than the {margin:.0%} margin being tested; trust the paired ratios "
                f"(or rerun with more --rounds on a quieter machine)."
            )
    if control:
        c = statistics.median(control)
        facts["paired_control"] = {"median": c, "ratios": list(control)}
        console.print(
            f"A/A control ({bare.label} vs a second bare server, paired): {c:.3f} "
            f"(rounds {min(control):.3f}..{max(control):.3f}): the paired method's own error.",
        )
        if abs(c - 1) > 0.02:
            warnings.append(
                f"The A/A control is {c:.3f}, not ~1.000: the paired ratios are off by about "
                f"that much in this run."
            )
    for w in warnings:
        console.print(f"[yellow]{w}[/]")
    return facts


def target_rows(summaries: Sequence[Summary], basis: str) -> list[dict[str, Any]]:
    """The targets in the common shape of ``benchmarks/all.py``'s summary."""
    rows: list[dict[str, Any]] = []
    for s in summaries:
        if s.target is None:
            continue
        issue = 4 if s.group == "page" else 2
        rows.append(
            {
                "id": f"run.{s.config}",
                "issue": issue,
                "label": f"{s.label}: x bare",
                "value": s.ratio_to_bare,
                "target": s.target,
                "op": ">=",
                "unit": "x",
                "met": s.checks.get("min_ratio_to_bare"),
                "detail": f"{basis} ratio; {_fmt(s.median_rps, ',.0f')} req/s alone",
            }
        )
        if "faster_than_session" in s.checks:
            rows.append(
                {
                    "id": f"run.{s.config}.session",
                    "issue": 2,
                    "label": f"{s.label}: x SessionMiddleware",
                    "value": s.ratio_to_session,
                    "target": 1.0,
                    "op": ">",
                    "unit": "x",
                    "met": s.checks["faster_than_session"],
                    "detail": f"{basis} ratios",
                }
            )
    return rows


# -- main -----------------------------------------------------------------------


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark cookiegate against a bare Starlette app and SessionMiddleware.",
        epilog="COOKIEGATE_BENCH_ROUNDS and COOKIEGATE_BENCH_DURATION set the defaults "
        "of --rounds and --duration (for `make bench`).",
    )
    p.add_argument(
        "--rounds",
        type=int,
        help="interleaved rounds, each measuring every configuration once (default 4)",
    )
    p.add_argument(
        "--duration", type=int, help="seconds of load per configuration per round (default 5)"
    )
    p.add_argument("--warmup", type=int, help="warm-up seconds per configuration (default 2)")
    p.add_argument(
        "--mode",
        choices=("both", "sequential", "paired"),
        default="both",
        help="sequential: each server alone, interleaved; paired: each configuration at the "
        "same time as a bare server on the same CPU (cancels machine noise); default both",
    )
    p.add_argument(
        "--group",
        choices=("all", *GROUPS),
        default="all",
        help="cookies: the 3-cookie route (issue 2); page: the HTML page (issue 4); default all",
    )
    p.add_argument(
        "--noop",
        action="store_true",
        help="also measure a no-op header-editing ASGI middleware (the floor any "
        "implementation pays) and apps.FloorGateMiddleware (the least a gate must do)",
    )
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 1 round, 2 s, 1 s warm-up (explicit --rounds etc. still win)",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin server and wrk to CPUs")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON result file")
    p.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    opts = p.parse_args(argv)
    if opts.quick:
        defaults = {"rounds": 1, "duration": 2, "warmup": 1}
    else:
        defaults = {
            # 4 x 5 s: both tables (7 sequential + 7 paired measurements a round)
            # take ~5 min, so `make bench` with the other two parts stays near 6
            "rounds": _env_int("COOKIEGATE_BENCH_ROUNDS", 4),
            "duration": _env_int("COOKIEGATE_BENCH_DURATION", 5),
            "warmup": 2,
        }
    for name, value in defaults.items():
        if getattr(opts, name) is None:
            setattr(opts, name, value)
    if min(opts.rounds, opts.duration, opts.warmup, opts.connections, opts.threads) < 1:
        p.error("--rounds, --duration, --warmup, --connections and --threads must be >= 1")
    if opts.connections < opts.threads:
        p.error("--connections must be >= --threads")
    return opts


def _cpu_plan(no_pin: bool, notes: list[str]) -> tuple[int | None, int | None]:
    if no_pin:
        notes.append("Not pinned (--no-pin): server and wrk share the CPUs.")
        return None, None
    if shutil.which("taskset") is None:
        notes.append("taskset not found: server and wrk are not pinned to separate CPUs.")
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        notes.append("Only one CPU available: server and wrk compete for it.")
        return None, None
    return cpus[0], cpus[1]


def _uvicorn_opts(notes: list[str]) -> list[str]:
    opts = []
    for module, flag in (("uvloop", "--loop"), ("httptools", "--http")):
        if importlib.util.find_spec(module) is not None:
            opts += [flag, module]
        else:
            notes.append(f"{module} is not installed: uvicorn uses its pure-Python fallback.")
    return opts


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("cookiegate", "starlette", "uvicorn", "uvloop", "httptools", "itsdangerous"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    try:
        out["wrk"] = subprocess.run(
            ["wrk", "--version"], capture_output=True, text=True, check=False
        ).stdout.split("\n", 1)[0]
    except OSError:
        out["wrk"] = "not installed"
    return out


def _source_fingerprint() -> dict[str, str]:
    """Which cookiegate code was measured: the git commit (if any, ``+dirty`` when
    the tree has changes) and a hash of ``src/cookiegate/**/*.py``."""
    digest = hashlib.sha256()
    src = ROOT / "src" / "cookiegate"
    for path in sorted(src.rglob("*.py")):
        digest.update(path.relative_to(src).as_posix().encode() + b"\0" + path.read_bytes())
    out = {"src_sha256": digest.hexdigest()[:16]}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        if head.returncode == 0:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--", "src"],
                cwd=ROOT,
                capture_output=True,
                text=True,
            ).stdout.strip()
            out["git"] = head.stdout.strip() + ("+dirty" if dirty else "")
    return out


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


@contextlib.contextmanager
def _exit_on_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into SystemExit so ``finally`` blocks stop the servers."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    if shutil.which("wrk") is None:
        console.print(
            "[red]wrk is not installed[/] (`make bench` installs it: apt-get install wrk)"
        )
        return 2
    modes = ["sequential", "paired"] if opts.mode == "both" else [opts.mode]
    source = _source_fingerprint()  # before measuring: the code the servers load
    notes: list[str] = []
    server_cpu, client_cpu = _cpu_plan(opts.no_pin, notes)
    uvicorn_opts = _uvicorn_opts(notes)
    group_keys = list(GROUPS) if opts.group == "all" else [opts.group]
    groups = [GROUPS[g] for g in group_keys]
    configs = make_configs(noop=opts.noop, groups=group_keys)
    by_key = {c.key: c for c in configs}
    samples: list[Sample] = []
    responses: dict[str, dict[str, Any]] = {}
    servers: dict[str, Server] = {}
    # server name -> apps attribute; "bare_b" is the second bare server of the paired
    # mode (the A/A controls of every group)
    wanted = {c.server: c.server for c in configs}
    if "paired" in modes:
        wanted["bare_b"] = "bare"

    def server_of(key: str) -> Server:
        return servers[by_key[key].server]

    with (
        _exit_on_signals(),
        tempfile.TemporaryDirectory(prefix="cookiegate-bench-") as tmp,
    ):
        tmpdir = Path(tmp)
        lua = tmpdir / "report.lua"
        lua.write_text(WRK_LUA)
        load = Load(opts, lua, client_cpu)
        try:
            for name, attr in wanted.items():
                servers[name] = Server(name, attr, server_cpu, uvicorn_opts, tmpdir)
                servers[name].start()
            for cfg in configs:
                server_of(cfg.key).wait_ready(cfg.cookie)
                responses[cfg.key] = check_response(cfg, server_of(cfg.key).port)
            if "bare_b" in servers:
                servers["bare_b"].wait_ready(configs[0].cookie)
                for group in groups:
                    check_response(by_key[group.reference], servers["bare_b"].port)
            pinning = (
                f"servers on CPU {server_cpu}, wrk on CPU {client_cpu}"
                if server_cpu is not None
                else "not pinned"
            )
            console.print(
                f"uvicorn {' '.join(uvicorn_opts) or '(defaults)'}, 1 worker each; {pinning}. "
                f"Responses checked. Warming up ({opts.warmup} s per configuration)..."
            )
            warm = [(c.cookie, server_of(c.key).url(c.path)) for c in configs]
            if "bare_b" in servers:
                for group in groups:
                    ref = by_key[group.reference]
                    warm.append((ref.cookie, servers["bare_b"].url(ref.path)))
            for cookie, url in warm:
                load.run([(url, cookie)], opts.warmup)

            # paired mode: (pair key, configuration, its server, the group's reference)
            pairs: list[tuple[str, Config, Server, Config]] = []
            for group in groups:
                ref = by_key[group.reference]
                pairs.append((group.control, ref, servers.get("bare_b") or server_of(ref.key), ref))
                pairs += [
                    (c.key, c, server_of(c.key), ref)
                    for c in configs
                    if c.group == group.key and c.key != ref.key
                ]
            for rnd in range(opts.rounds):
                if "sequential" in modes:
                    # rotate the order each round so no configuration always goes first
                    shift = rnd % len(configs)
                    for cfg in configs[shift:] + configs[:shift]:
                        url = server_of(cfg.key).url(cfg.path)
                        data = load.run([(url, cfg.cookie)], opts.duration)
                        sample = to_sample(data[0], "sequential", cfg.key, rnd)
                        samples.append(sample)
                        _progress(
                            rnd,
                            opts.rounds,
                            f"{cfg.label:<27} {sample.rps:>9,.0f} req/s  "
                            f"p99 {sample.lat_p99_us / 1000:6.2f} ms",
                            [sample],
                        )
                if "paired" in modes:
                    shift = rnd % len(pairs)
                    for key, cfg, server, ref in pairs[shift:] + pairs[:shift]:
                        jobs = [
                            (server_of(ref.key).url(ref.path), ref.cookie),
                            (server.url(cfg.path), cfg.cookie),
                        ]
                        # alternate which wrk starts first, so a head start favours neither
                        first = 1 if rnd % 2 else 0
                        done = load.run(jobs[first:] + jobs[:first], opts.duration)
                        a, b = done[first:] + done[:first]
                        two = [
                            to_sample(a, "paired", ref.key, rnd, partner=key),
                            to_sample(b, "paired", key, rnd, partner=ref.key),
                        ]
                        samples.extend(two)
                        is_control = key == GROUPS[ref.group].control
                        label = f"{ref.label} (A/A control)" if is_control else cfg.label
                        ratio = two[1].rps / two[0].rps if two[0].rps else 0.0
                        _progress(
                            rnd,
                            opts.rounds,
                            f"paired: {label:<27} {two[1].rps:>7,.0f} vs bare "
                            f"{two[0].rps:>7,.0f} req/s = {ratio:.3f}",
                            two,
                        )
        finally:
            for server in servers.values():
                server.stop()

    meta: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "modes": modes,
        "groups": group_keys,
        "rounds": opts.rounds,
        "duration_s": opts.duration,
        "warmup_s": opts.warmup,
        "wrk": {"threads": opts.threads, "connections": opts.connections},
        "uvicorn": uvicorn_opts,
        "pinning": {"server_cpu": server_cpu, "wrk_cpu": client_cpu},
        "host": {"cpu": _cpu_model(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": _versions(),
        "source": source,
        "target_ratio": TARGET_RATIO,
        "targets": {k: v for k, v in TARGETS.items() if k in by_key},
        "notes": notes,
    }
    basis = "paired" if "paired" in modes else "sequential"
    summaries: list[Summary] = []
    targets: list[dict[str, Any]] = []
    meta["group_facts"] = {}
    for group in groups:
        mine, control = summarise(group, [c for c in configs if c.group == group.key], samples)
        for s in mine:
            s.response = responses.get(s.config, {})
        facts = render(group, mine, control, meta)
        meta["group_facts"][group.key] = facts
        if group.key == "cookies":  # the keys of earlier versions of latest.json
            meta.update(facts)
        summaries += mine
        targets += target_rows(mine, basis)
    warnings = list(notes)
    if opts.rounds < 3:
        warnings.append("Fewer than 3 rounds: a smoke test, not a measurement.")
    for w in warnings:
        console.print(f"[yellow]{w}[/]")
    result: dict[str, Any] = {
        "meta": meta,
        # the Cookie header itself holds signed tokens; its length is enough here
        "configs": [
            {
                "key": c.key,
                "label": c.label,
                "server": c.server,
                "path": c.path,
                "group": c.group,
                "cookie_bytes": len(c.cookie),
            }
            for c in configs
        ],
        "summary": [asdict(s) for s in summaries],
        "samples": [asdict(s) for s in samples],
        "targets": targets,
        "pass": all(t["met"] for t in targets),
    }
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(result, indent=2) + "\n")
    try:
        shown = opts.output.resolve().relative_to(ROOT)
    except ValueError:
        shown = opts.output
    verdict = "[green]all targets met[/]" if result["pass"] else "[red]target(s) missed[/]"
    console.print(f"{verdict}. Wrote {shown}")
    if opts.strict and not result["pass"]:
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted; servers stopped.[/]")
        sys.exit(130)
    except RuntimeError as exc:
        console.print(f"[red]benchmark aborted:[/] {exc}")
        sys.exit(1)
