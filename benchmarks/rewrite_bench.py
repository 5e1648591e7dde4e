"""Throughput and memory of the streaming HTML rewriter (``cookiegate.rewrite``).

    .venv/bin/python benchmarks/rewrite_bench.py            # 30 KB page + 200 MB stream
    .venv/bin/python benchmarks/rewrite_bench.py --quick    # smaller, for a smoke test

1. MB/s on the realistic ~30 KB page of ``pages.shop_page()`` (GA4, GTM with its
   noscript iframe, Meta Pixel with its noscript image, Hotjar, a YouTube embed,
   preconnect hints, 150 first-party images), fed in 4 KB chunks to a fresh
   ``HtmlRewriter`` (visitor refused everything, banner inserted) per page; best
   and median of N repetitions of ``--pages`` pages each. The same for
   ``HtmlInjector`` for comparison.
2. Peak memory growth (tracemalloc) while streaming a ~200 MB response in 64 KB
   chunks through one rewriter, output discarded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pages

from cookiegate.inject import HtmlInjector
from cookiegate.rewrite import HtmlRewriter
from cookiegate.trackers import default_matcher

BANNER = b'<div id="cookiegate" data-cg-state="null">banner</div>'
REFUSED = frozenset({"performance", "marketing", "functional"})


def rewriter() -> HtmlRewriter:
    return HtmlRewriter(REFUSED, BANNER)


def cold_rewriter() -> HtmlRewriter:
    """As :func:`rewriter`, with the memoised decisions and URL cache forgotten
    first: every page then costs what a never-seen page costs."""
    default_matcher().clear_caches()
    return HtmlRewriter(REFUSED, BANNER)


def injector() -> HtmlInjector:
    return HtmlInjector(BANNER)


def throughput(
    make: Callable[[], HtmlRewriter | HtmlInjector],
    chunks: list[bytes],
    pages_per_rep: int,
    reps: int,
) -> list[float]:
    size = sum(len(c) for c in chunks) * pages_per_rep
    rates = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(pages_per_rep):
            r = make()
            for c in chunks:
                r.feed(c)
            r.close()
        rates.append(size / (time.perf_counter() - t0) / 1e6)
    return rates


def stream_memory(total: int) -> tuple[float, int]:
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    r = rewriter()
    sent = 0
    t0 = time.perf_counter()
    for chunk in pages.stream(total):
        sent += len(r.feed(chunk))
    sent += len(r.close())
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak / 1e6, sent if dt else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--pages", type=int, default=100)
    ap.add_argument("--stream-mb", type=int, default=200)
    args = ap.parse_args()
    if args.quick:
        args.reps, args.pages, args.stream_mb = 3, 20, 20
    page = pages.shop_page()
    chunks = pages.chunked(page, 4096)
    # sanity: chunking does not change the output, and something was rewritten
    whole = rewriter()
    out_whole = whole.feed(page) + whole.close()
    r = rewriter()
    out_chunked = b"".join(r.feed(c) for c in chunks) + r.close()
    if out_whole != out_chunked or b"data-cg-blocked" not in out_whole:
        raise SystemExit("rewriter output depends on chunking or blocks nothing")
    print(
        f"page: {len(page)} bytes, {len(chunks)} chunks of 4096 bytes, "
        f"{out_whole.count(b'data-cg-blocked=')} elements neutralised"
    )
    for name, make in (
        ("HtmlRewriter", rewriter),
        ("  cold", cold_rewriter),
        ("HtmlInjector", injector),
    ):
        rates = throughput(make, chunks, args.pages, args.reps)
        print(
            f"{name:13} best {max(rates):7.1f} MB/s   median {statistics.median(rates):7.1f} MB/s"
            f"   ({args.reps} x {args.pages} pages)"
        )
    t0 = time.perf_counter()
    peak, sent = stream_memory(args.stream_mb * 1_000_000)
    dt = time.perf_counter() - t0
    print(
        f"stream {args.stream_mb} MB in 64 KB chunks: peak memory growth {peak:.2f} MB "
        f"(tracemalloc; {sent / 1e6:.0f} MB out, {sent / dt / 1e6:.0f} MB/s under tracemalloc)"
    )


if __name__ == "__main__":
    main()
