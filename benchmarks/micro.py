"""In-process micro-benchmark: µs per request of the ASGI call path, no server,
no sockets. It isolates what the middleware itself costs, which ``run.py``
(uvicorn + wrk) cannot separate from the server's own work.

    .venv/bin/python benchmarks/micro.py                  # all cases
    .venv/bin/python benchmarks/micro.py -n 50000 --repeat 7
    .venv/bin/python benchmarks/micro.py --profile cg_refuse   # cProfile one case
    .venv/bin/python benchmarks/micro.py --page           # the HTML page cases only
    .venv/bin/python benchmarks/micro.py --profile page_undecided
    .venv/bin/python benchmarks/micro.py --cold --page  # caches evicted before each request

Two stacks are measured:

* ``starlette``: the apps of ``apps.py`` that ``run.py`` serves (Starlette routing,
  ``response.set_cookie``...), so the ratios are comparable with ``run.py``'s.
* ``raw``: a minimal ASGI app sending the same response, alone and wrapped in each
  middleware; the difference is the middleware's own cost per request.

A third stack, ``page``, is only run when asked for (``--page``, or its keys in
``--only`` / ``--profile``): ``GET /page`` of the same apps (the ~30 KB page of
``pages.py``), bare, the floor gate inserting the settings control (``page_floor``),
cookiegate for a visitor who granted every category (settings control injected)
and for an undecided one (banner + tracking rewriter); these cost hundreds of µs,
so ``--page`` defaults to ``-n 1000``.

``--cold`` evicts the CPU caches before every timed request (it copies an 8 MiB
buffer, outside the timed region), as a server's own work between two requests
does. Behind uvicorn + wrk the middleware's cost per request comes out 2-4x what
the warm loop shows; the cold loop reproduces that (on the development VM, 12-03:
floor gate +1.6 µs warm, +6.7 cold, +4.4 under uvicorn; page accepted +8.0 warm,
+23.9 cold, +31.6 under uvicorn), so it ranks changes by what they save under a
server: code and data touched per request, not only instructions run.

``cache miss`` cases send a different consent token on every request, so
cookiegate's caches (parsed Cookie header, verified token) never hit: the cost
of a visitor's first request, or of a site with more visitors than the cache
holds (``Gate(token_cache_size=4096)``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import pstats
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import apps
from rich.console import Console
from rich.table import Table

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)

Scope = apps.Scope
Message = apps.Message
ASGIApp = apps.ASGIApp


@dataclass(frozen=True)
class Case:
    key: str
    stack: str
    label: str
    app: ASGIApp
    #: one Cookie header per request, cycled
    cookies: Sequence[str]
    #: the case this one is compared with (its overhead is the difference)
    baseline: str | None = None
    path: str = "/"


def _scope(cookie: str, path: str = "/") -> Scope:
    """The scope uvicorn (httptools) builds for wrk's request."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"cookie", cookie.encode("latin-1"))],
        "state": {},
    }


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class _Sink:
    """``send``: keeps the last response start, so the cases can be checked."""

    __slots__ = ("start",)

    def __init__(self) -> None:
        self.start: Message | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message


def make_cases(n: int) -> list[Case]:
    accept = apps.request_cookie(["performance"])
    refuse = apps.request_cookie([])
    # Distinct tokens (made before timing), cycled: more of them than the caches
    # hold (4096 entries each), so every request misses.
    fresh = [apps.request_cookie(["performance"]) for _ in range(max(n, 2 * 4096))]
    Row = tuple[str, str, ASGIApp, Sequence[str], str | None]
    starlette: list[Row] = [
        ("bare", "bare Starlette", apps.bare_app(), [accept], None),
        ("cg_accept", "cookiegate, accepted", apps.cookiegate_app(), [accept], "bare"),
        ("cg_refuse", "cookiegate, refused", apps.cookiegate_app(), [refuse], "bare"),
        ("noop", "no-op header middleware", apps.noop_app(), [accept], "bare"),
        ("floor", "floor gate (apps.FloorGateMiddleware)", apps.floor_app(), [accept], "bare"),
        ("session_write", "SessionMiddleware, write", apps.session_app(), [accept], "bare"),
        (
            "session_read",
            "SessionMiddleware, read only",
            apps.session_app(write=False),
            [accept],
            "bare",
        ),
    ]
    raw: list[Row] = [
        ("raw", "raw ASGI app", apps.raw_app, [accept], None),
        ("raw_cg_accept", "+ cookiegate, accepted", apps.raw_cookiegate(), [accept], "raw"),
        ("raw_cg_refuse", "+ cookiegate, refused", apps.raw_cookiegate(), [refuse], "raw"),
        ("raw_cg_miss", "+ cookiegate, accepted, cache miss", apps.raw_cookiegate(), fresh, "raw"),
        ("raw_noop", "+ no-op header middleware", apps.raw_noop(), [accept], "raw"),
        ("raw_floor", "+ floor gate (apps.FloorGateMiddleware)", apps.raw_floor(), [accept], "raw"),
        ("raw_session", "+ SessionMiddleware, write", apps.raw_session(), [accept], "raw"),
    ]
    gated = apps.cookiegate_app()
    undecided = apps.request_cookie(None)
    page: list[Row] = [
        ("page_bare", "page: bare Starlette", apps.bare_app(), [accept], None),
        (
            "page_floor",
            "page: floor gate + settings control",
            apps.floor_app(),
            [accept],
            "page_bare",
        ),
        ("page_accept", "page: cookiegate, accepted", gated, [accept], "page_bare"),
        (
            "page_own_link",
            "page: accepted, settings_control=False",
            apps.cookiegate_app(apps.GATE_OWN_LINK),
            [accept],
            "page_bare",
        ),
        ("page_undecided", "page: cookiegate, undecided", gated, [undecided], "page_bare"),
    ]
    return [
        Case(key, stack, label, app, cookies, baseline, "/page" if stack == "page" else "/")
        for stack, rows in (("starlette", starlette), ("raw", raw), ("page", page))
        for key, label, app, cookies, baseline in rows
    ]


#: copied before each request of a ``--cold`` run: larger than the caches
_EVICT = bytearray(8 * 1024 * 1024)


async def _drive(
    app: ASGIApp, cookies: Iterator[str], n: int, path: str = "/", cold: bool = False
) -> float:
    """Seconds for ``n`` requests (scopes are built outside the timed region;
    ``cold``: the caches are evicted before each request, outside it too)."""
    scopes = [_scope(next(cookies), path) for _ in range(n)]
    sink = _Sink()
    if cold:
        clock = time.perf_counter
        total = 0.0
        for scope in scopes:
            bytes(_EVICT)
            t0 = clock()
            await app(scope, _receive, sink)
            total += clock() - t0
        return total
    t0 = time.perf_counter()
    for scope in scopes:
        await app(scope, _receive, sink)
    return time.perf_counter() - t0


def _check(case: Case) -> None:
    sink = _Sink()
    asyncio.run(_run_one(case.app, _scope(case.cookies[0], case.path), sink))
    if sink.start is None or sink.start["status"] != 200:
        raise RuntimeError(f"{case.label}: no 200 response")
    if case.stack == "page":
        ctype = dict(sink.start["headers"]).get(b"content-type", b"")
        if not ctype.startswith(b"text/html"):
            raise RuntimeError(f"{case.label}: content-type {ctype!r}")
        return
    names = sorted(
        v.decode("latin-1").split("=", 1)[0]
        for k, v in sink.start["headers"]
        if k == b"set-cookie" and b"Max-Age=0" not in v
    )
    want = ["session"] if case.key.endswith("refuse") else ["_ga", "ab_variant", "session"]
    if names != want:
        raise RuntimeError(f"{case.label}: Set-Cookie {names}, expected {want}")


async def _run_one(app: ASGIApp, scope: Scope, sink: _Sink) -> None:
    await app(scope, _receive, sink)


def bench(
    cases: Sequence[Case], n: int, repeat: int, batch: int, cold: bool = False
) -> dict[str, list[float]]:
    """µs per request of each case, ``repeat`` times. Within a repeat the cases take
    turns every ``batch`` requests, so a slow moment of the machine (other
    processes, a noisy VM neighbour) costs every case alike."""
    per_case: dict[str, list[float]] = {c.key: [] for c in cases}
    iters = {c.key: itertools.cycle(c.cookies) for c in cases}
    batch = max(1, min(batch, n))

    async def main() -> None:
        for case in cases:  # warm-up: caches, Starlette's lazily built stack
            await _drive(case.app, iters[case.key], min(n, 2000), case.path)
        for _ in range(repeat):
            total = dict.fromkeys(per_case, 0.0)
            done = 0
            while done < n:
                size = min(batch, n - done)
                for case in cases:
                    total[case.key] += await _drive(
                        case.app, iters[case.key], size, case.path, cold
                    )
                done += size
            for key, seconds in total.items():
                per_case[key].append(seconds / n * 1e6)

    asyncio.run(main())
    return per_case


def render(
    cases: Sequence[Case],
    results: dict[str, list[float]],
    n: int,
    repeat: int,
    cold: bool = False,
) -> None:
    table = Table(
        title=f"In-process ASGI call path: {n:,} requests x {repeat} repeats per case, "
        "interleaved in batches" + (", caches evicted before each request" if cold else ""),
        title_justify="left",
    )
    table.add_column("stack")
    table.add_column("case")
    table.add_column("µs/req median", justify="right")
    table.add_column("µs/req min", justify="right")
    table.add_column("+µs vs baseline", justify="right")
    table.add_column("x baseline speed", justify="right")
    med = {k: statistics.median(v) for k, v in results.items()}
    for case in cases:
        extra = ratio = ""
        if case.baseline is not None:
            extra = f"{med[case.key] - med[case.baseline]:+.1f}"
            if case.stack != "raw":  # a ratio to a ~1 µs raw app means nothing
                ratio = f"{med[case.baseline] / med[case.key]:.3f}"
        table.add_row(
            case.stack,
            case.label,
            f"{med[case.key]:.1f}",
            f"{min(results[case.key]):.1f}",
            extra,
            ratio,
        )
    console.print(table)
    console.print(
        "x baseline speed: requests/s relative to bare Starlette if the server itself cost "
        "nothing. Behind uvicorn the +µs came out 2-4x larger than in the warm loop, about "
        "as large as with --cold (see the module docstring): use run.py for the ratio, this "
        "for the hot spots.",
        style="dim",
    )


def profile(case: Case, n: int, top: int) -> None:
    iters = itertools.cycle(case.cookies)

    async def go() -> None:
        await _drive(case.app, iters, min(n, 2000), case.path)  # warm-up outside the profile
        prof = cProfile.Profile()
        scopes = [_scope(next(iters), case.path) for _ in range(n)]
        sink = _Sink()
        prof.enable()
        for scope in scopes:
            await case.app(scope, _receive, sink)
        prof.disable()
        stats = pstats.Stats(prof, stream=sys.stdout)
        stats.strip_dirs().sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)

    asyncio.run(go())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("-n", type=int, help="requests per repeat (default 20000; 1000 with --page)")
    p.add_argument("--repeat", type=int, default=5, help="repeats per case (default 5)")
    p.add_argument(
        "--batch", type=int, default=200, help="requests per turn when interleaving (200)"
    )
    p.add_argument("--only", nargs="*", default=None, help="case keys to run (default all)")
    p.add_argument("--profile", metavar="CASE", help="cProfile one case instead of timing")
    p.add_argument("--top", type=int, default=25, help="rows of the profile (default 25)")
    p.add_argument("--list", action="store_true", help="list the case keys and exit")
    p.add_argument("--page", action="store_true", help="run the HTML page cases (GET /page) only")
    p.add_argument(
        "--cold", action="store_true", help="evict the CPU caches before each timed request"
    )
    opts = p.parse_args(argv)
    if opts.n is None:
        opts.n = 1000 if opts.page else 2000 if opts.cold else 20000
    if opts.n < 1 or opts.repeat < 1:
        p.error("-n and --repeat must be >= 1")
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    cases = make_cases(opts.n)
    by_key: dict[str, Case] = {c.key: c for c in cases}
    if opts.list:
        for c in cases:
            console.print(f"{c.key:<15} {c.stack:<10} {c.label}")
        return 0
    if opts.profile:
        if opts.profile not in by_key:
            console.print(f"[red]unknown case {opts.profile!r}[/]; one of {', '.join(by_key)}")
            return 2
        profile(by_key[opts.profile], opts.n, opts.top)
        return 0
    if opts.page and not opts.only:
        opts.only = [c.key for c in cases if c.stack == "page"]
    if opts.only:
        unknown = [k for k in opts.only if k not in by_key]
        if unknown:
            console.print(f"[red]unknown case(s) {unknown}[/]; one of {', '.join(by_key)}")
            return 2
        wanted = set(opts.only)
        wanted |= {by_key[k].baseline for k in opts.only if by_key[k].baseline is not None}
        cases = [c for c in cases if c.key in wanted]
    else:  # the page stack only when asked for
        cases = [c for c in cases if c.stack != "page"]
    for case in cases:
        _check(case)
    results = bench(cases, opts.n, opts.repeat, opts.batch, opts.cold)
    render(cases, results, opts.n, opts.repeat, opts.cold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
