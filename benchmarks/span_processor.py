"""What SessionSpanProcessor adds to the OpenTelemetry SDK's span start+end, in one run.

    python -m benchmarks.span_processor [--rounds 21] [--spans 5000]

Spans are started and ended on an SDK TracerProvider with no exporter (the cost measured is the
SDK's own bookkeeping plus the processor), inside a session opened by the ASGI adapter's path
(``url.path``, ``http.request.method``, ``http.route``) and outside any session.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from opentelemetry.sdk.trace import TracerProvider

from benchmarks.harness import interleaved
from session_mw import session
from session_mw.otel import SessionSpanProcessor

ATTRIBUTES = {"url.path": "/chat/42", "http.request.method": "POST", "http.route": "/chat/{cid}"}


def runner(with_processor: bool, in_session: bool) -> Callable[[int], float]:
    provider = TracerProvider()
    if with_processor:
        provider.add_span_processor(SessionSpanProcessor())
    tracer = provider.get_tracer("bench")

    def many(n: int) -> float:
        with session("chat-42", attributes=ATTRIBUTES if in_session else None):
            start = time.perf_counter()
            for _ in range(n):
                tracer.start_span("llm", attributes={"llm.model_name": "m"}).end()
            return time.perf_counter() - start

    def outside(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            tracer.start_span("llm", attributes={"llm.model_name": "m"}).end()
        return time.perf_counter() - start

    return many if in_session else outside


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--spans", type=int, default=5000)
    args = parser.parse_args()
    variants = {
        "SDK alone, in a session": runner(False, True),
        "SDK + SessionSpanProcessor, in a session": runner(True, True),
        "SDK alone, no session": runner(False, False),
        "SDK + SessionSpanProcessor, no session": runner(True, False),
    }
    times = interleaved(variants, rounds=args.rounds, n=args.spans)
    print(
        "| spans | median us/span (start+end) | added by the processor | share of the SDK's cost |"
    )
    print("|---|---:|---:|---:|")
    for where in ("in a session", "no session"):
        bare = times[f"SDK alone, {where}"]
        with_it = times[f"SDK + SessionSpanProcessor, {where}"]
        added = statistics.median(w - b for w, b in zip(with_it, bare, strict=True))
        base = statistics.median(bare)
        print(f"| SDK alone, {where} | {base:.2f} | - | - |")
        print(
            f"| SDK + SessionSpanProcessor, {where} | {statistics.median(with_it):.2f} "
            f"| {added:.2f} | {added / base:.1%} |"
        )
    print(f"\n({args.rounds} interleaved rounds of {args.spans} spans; medians over rounds)")


if __name__ == "__main__":
    main()
