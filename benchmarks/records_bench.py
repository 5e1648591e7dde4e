"""Consent POSTs per second with every record persisted, vs a bare endpoint.

One uvicorn process serves a Starlette app behind cookiegate with a
:class:`~cookiegate.records.Recorder` on a SQLite file (WAL, synchronous=FULL,
journal fsync per batch). wrk POSTs ``{"action":"accept_all"}`` to
``/_cookiegate/consent`` (a new visitor each time: one record per request), and,
alternately, a trivial JSON POST to the same app's ``/bare`` endpoint. After the
run the server is stopped (the writer drains on shutdown) and the script checks
that the number of records equals the number of 2xx consent responses the
server sent (counted server-side; wrk's own count is printed too).

    .venv/bin/python benchmarks/records_bench.py                # 3 rounds x 5 s
    .venv/bin/python benchmarks/records_bench.py --rounds 1 --duration 2
    COOKIEGATE_BENCH_RECORDS=0 .venv/bin/python benchmarks/records_bench.py   # records off
    .venv/bin/python benchmarks/records_bench.py --json out.json   # also write the results

uvicorn is pinned to CPU 0 and wrk to CPU 1 when the machine has two or more.
Exits 1 if a record is missing or the median ratio is below the target (0.5).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

TARGET = 0.5
HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
SECRET = "cookiegate-benchmark-secret-0001"

WRK_LUA = r"""
wrk.method = "POST"
wrk.body = '{"action":"accept_all"}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("WRKJSON {\"requests\":%d,\"duration_us\":%d,\"err_status\":%d,"
    .. "\"err_connect\":%d,\"err_read\":%d,\"err_write\":%d,\"err_timeout\":%d}\n",
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout))
end
"""

Message = MutableMapping[str, Any]
ASGI = Callable[[Any, Any, Any], Awaitable[None]]


# -- the served app (uvicorn --factory records_bench:make_app) ---------------


def make_app() -> ASGI:
    """The app uvicorn serves; configured by COOKIEGATE_BENCH_DB / _COUNT."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from cookiegate import Gate, Policy
    from cookiegate.asgi import CookieGateMiddleware
    from cookiegate.records import Recorder

    db = os.environ["COOKIEGATE_BENCH_DB"]
    count_file = Path(os.environ["COOKIEGATE_BENCH_COUNT"])
    recorder = Recorder(db, journal_dir=Path(db).parent / "journal", purge_interval=0)
    records = recorder if os.environ.get("COOKIEGATE_BENCH_RECORDS", "1") == "1" else None
    gate = Gate(Policy(version="2026-11-01"), secret_keys=[SECRET], records=records, ui=None)
    ok = {"n": 0}

    async def bare(request: Request) -> Response:
        data = await request.json()
        return JSONResponse({"ok": True, "got": len(data)})

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        recorder.close(timeout=120)  # the writer drains before the server exits
        count_file.write_text(str(ok["n"]))

    inner = Starlette(routes=[Route("/bare", bare, methods=["POST"])], lifespan=lifespan)
    gated = CookieGateMiddleware(inner, gate=gate)
    consent_path = gate.prefix + "consent"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != consent_path:
            await gated(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                ok["n"] += 1
            await send(message)

        await gated(scope, receive, counting_send)

    return app


# -- the driver ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if (os.cpu_count() or 1) >= 2 else []


def _wrk(url: str, lua: Path, duration: float, connections: int) -> dict[str, int]:
    cmd = [*_pin(1), "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "-s", str(lua), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    found = re.search(r"WRKJSON (\{.*\})", out)
    if found is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    result: dict[str, int] = json.loads(found.group(1))
    return result


def _wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("uvicorn exited during start-up")
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("uvicorn did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", type=Path, help="write the figures and targets to this file")
    args = parser.parse_args()

    from cookiegate.records import Store

    with tempfile.TemporaryDirectory(prefix="cg-records-bench-") as tmp:
        db = str(Path(tmp) / "records.db")
        count_file = Path(tmp) / "count"
        lua = Path(tmp) / "post.lua"
        lua.write_text(WRK_LUA)
        port = _free_port()
        env = {**os.environ, "COOKIEGATE_BENCH_DB": db, "COOKIEGATE_BENCH_COUNT": str(count_file)}
        cmd = [*_pin(0), sys.executable, "-m", "uvicorn", "--factory", "records_bench:make_app",
               "--app-dir", str(BENCH_DIR), "--host", HOST, "--port", str(port),
               "--no-access-log", "--log-level", "warning"]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env)
        bare_rps: list[float] = []
        consent_rps: list[float] = []
        wrk_2xx = 0
        try:
            _wait_up(port, proc)
            base = f"http://{HOST}:{port}"
            _wrk(base + "/bare", lua, 1, args.connections)  # warm-up
            for i in range(args.rounds):
                order = ["bare", "consent"] if i % 2 == 0 else ["consent", "bare"]
                for which in order:
                    path = "/bare" if which == "bare" else "/_cookiegate/consent"
                    res = _wrk(base + path, lua, args.duration, args.connections)
                    rps = res["requests"] / (res["duration_us"] / 1e6)
                    if which == "bare":
                        bare_rps.append(rps)
                    else:
                        consent_rps.append(rps)
                        wrk_2xx += res["requests"] - res["err_status"]
                    print(f"round {i + 1} {which:8s} {rps:9.0f} req/s  {res}")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=180)
        served_2xx = int(count_file.read_text())
        recording = os.environ.get("COOKIEGATE_BENCH_RECORDS", "1") == "1"
        store = Store(db)
        if recording:
            records, verified = store.count(), store.verify()
        else:  # COOKIEGATE_BENCH_RECORDS=0: the consent endpoint alone, nothing stored
            store.migrate()
            records, verified = served_2xx, store.verify()
        store.close()
    ratios = [c / b for c, b in zip(consent_rps, bare_rps, strict=True)]
    ratio = statistics.median(ratios)
    print(f"bare endpoint   median {statistics.median(bare_rps):9.0f} req/s")
    print(f"consent POST    median {statistics.median(consent_rps):9.0f} req/s (every record kept)")
    print(f"ratio consent/bare per round: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"ratio (median): {ratio:.2f}x  (target >= {TARGET}x)")
    print(f"2xx consent responses: server {served_2xx}, wrk {wrk_2xx}; records stored {records}")
    print(f"records verify: {'OK' if verified.ok else 'FAILED ' + verified.reason}")
    failed = records != served_2xx or not verified.ok or wrk_2xx > records
    if args.json is not None:
        targets = [
            {
                "id": "records.ratio",
                "issue": 5,
                "label": "consent POSTs/s, records kept: x bare endpoint",
                "value": ratio,
                "target": TARGET,
                "op": ">=",
                "unit": "x",
                "met": ratio >= TARGET,
                "detail": f"{statistics.median(consent_rps):,.0f} vs "
                f"{statistics.median(bare_rps):,.0f} req/s; {args.rounds} round(s)",
            },
            {
                "id": "records.complete",
                "issue": 5,
                "label": "a record per 2xx consent response, verified",
                "value": float(records),
                "target": float(served_2xx),
                "op": "==",
                "unit": "records",
                "met": not failed,
                "detail": f"{served_2xx:,} 2xx sent; verify {'OK' if verified.ok else 'FAILED'}",
            },
        ]
        result = {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "connections": args.connections,
            "bare_rps": bare_rps,
            "consent_rps": consent_rps,
            "ratios": ratios,
            "ratio": ratio,
            "records": records,
            "served_2xx": served_2xx,
            "wrk_2xx": wrk_2xx,
            "verified": verified.ok,
            "targets": targets,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if failed:
        print("FAIL: records do not match the 2xx consent responses")
        return 1
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
