"""What SessionSpanProcessor adds to a span's start and end, in one run.

    python -m benchmarks.span_processor [--rounds 21] [--spans 5000]
    python -m benchmarks.span_processor --instructions [5000]   # callgrind

Two set-ups, each without the processor, with it writing the id under one name (``session.id``)
and with it writing the default two (``session.id`` and ``gen_ai.conversation.id``): the
OpenTelemetry SDK alone (a TracerProvider
with no other processor: the SDK's bookkeeping only), and a pipeline as deployed (a
``BatchSpanProcessor`` whose exporter drops what it is given, spans started with the five
attributes an OpenInference LLM instrumentation starts them with). Inside a session opened with
the ASGI adapter's attributes (``url.path``, ``http.request.method``, ``http.route``) and outside
any session. The share is the processor's added cost over the set-up's own per-span cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from benchmarks.harness import interleaved
from benchmarks.instructions import collected
from session_mw import session
from session_mw.otel import ID_ATTRIBUTES, SessionSpanProcessor

ATTRIBUTES = {"url.path": "/chat/42", "http.request.method": "POST", "http.route": "/chat/{cid}"}
# What an OpenInference LLM instrumentation starts a span with.
LLM = {
    "openinference.span.kind": "LLM",
    "llm.model_name": "gpt-4o-mini",
    "llm.provider": "openai",
    "input.value": '{"messages": [{"role": "user", "content": "hi"}]}',
    "input.mime_type": "application/json",
}
SETUPS = ("SDK alone", "deployed pipeline")
# The processor's configurations: none, one name, the default two.
PROCESSORS: dict[str, tuple[str, ...] | None] = {
    "": None,
    " + SessionSpanProcessor(session.id)": ("session.id",),
    " + SessionSpanProcessor() (both names)": ID_ATTRIBUTES,
}
WITH = [suffix for suffix, names in PROCESSORS.items() if names is not None]
PLACES = ("in a session", "no session")


class Dropping(SpanExporter):
    """An exporter that sends nothing anywhere: the pipeline's cost without the network."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def runner(setup: str, names: tuple[str, ...] | None, in_session: bool) -> Callable[[int], float]:
    provider = TracerProvider()
    if names is not None:  # first, as the README puts it: before the exporting processor
        provider.add_span_processor(SessionSpanProcessor(names))
    attributes = {"llm.model_name": "m"}
    if setup == "deployed pipeline":
        provider.add_span_processor(BatchSpanProcessor(Dropping()))
        attributes = LLM
    tracer = provider.get_tracer("bench")

    def spans(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            tracer.start_span("llm", attributes=attributes).end()
        return time.perf_counter() - start

    def many(n: int) -> float:
        if not in_session:
            return spans(n)
        with session("chat-42", attributes=ATTRIBUTES):
            return spans(n)

    return many


def name(setup: str, suffix: str, where: str) -> str:
    return f"{setup}{suffix}, {where}"


def variants() -> dict[str, Callable[[int], float]]:
    return {
        name(setup, suffix, where): runner(setup, names, where == PLACES[0])
        for setup in SETUPS
        for suffix, names in PROCESSORS.items()
        for where in PLACES
    }


def table(per_span: dict[str, float], added: dict[str, float], unit: str) -> None:
    """``added``: per variant with the processor, what it costs over the same set-up without."""
    print(f"| spans | {unit} per span (start+end) | added by the processor | share |")
    print("|---|---:|---:|---:|")
    fmt = "{:,.0f}" if unit == "instructions" else "{:.2f}"
    for setup in SETUPS:
        for where in PLACES:
            base = per_span[name(setup, "", where)]
            print(f"| {name(setup, '', where)} | {fmt.format(base)} | - | - |")
            for suffix in WITH:
                variant = name(setup, suffix, where)
                extra = added[variant]
                print(
                    f"| {variant} | {fmt.format(per_span[variant])} "
                    f"| {fmt.format(extra)} | {extra / base:.1%} |"
                )


def instructions(n: int) -> None:
    """Each variant under callgrind, after 500 warm-up spans: with 0 and with n more."""
    per_span = {}
    for variant in variants():
        command = ["-m", "benchmarks.span_processor", "--run", variant]
        runs = [collected([*command, str(spans)]) for spans in (n, 0)]
        per_span[variant] = (runs[0] - runs[1]) / n
    added = {
        name(setup, suffix, where): per_span[name(setup, suffix, where)]
        - per_span[name(setup, "", where)]
        for setup in SETUPS
        for suffix in WITH
        for where in PLACES
    }
    table(per_span, added, "instructions")
    print(f"\n(callgrind; {n} spans per variant after 500 warm-up spans)")


def main() -> None:
    if sys.argv[1:2] == ["--run"]:  # one variant, for callgrind
        many = variants()[sys.argv[2]]
        many(500)
        many(int(sys.argv[3]))
        return
    if sys.argv[1:2] == ["--instructions"]:
        instructions(int(sys.argv[2]) if len(sys.argv) > 2 else 5000)
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--spans", type=int, default=5000)
    args = parser.parse_args()
    times = interleaved(variants(), rounds=args.rounds, n=args.spans)
    added = {  # the median over rounds of the difference within each round
        name(setup, suffix, where): statistics.median(
            w - b
            for w, b in zip(
                times[name(setup, suffix, where)], times[name(setup, "", where)], strict=True
            )
        )
        for setup in SETUPS
        for suffix in WITH
        for where in PLACES
    }
    table({variant: statistics.median(t) for variant, t in times.items()}, added, "median us")
    print(f"\n({args.rounds} interleaved rounds of {args.spans} spans; medians over rounds)")


if __name__ == "__main__":
    main()
