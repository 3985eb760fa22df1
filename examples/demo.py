"""session-mw in one minute: two conversations through the FastAPI example, their traces grouped.

    scripts/demo                                # everything in-process, no service needed
    scripts/demo --phoenix http://127.0.0.1:6006 # also send the run to a Phoenix server

The FastAPI chat example runs in-process (OTel's FastAPI instrumentation on, spans kept in
memory). Two conversations talk to it at the same time, three turns each: the first turn sends
no ``X-Session-Id``, later turns send back the id the first response carried. Then every turn's
trace is printed as a tree of spans, grouped by session, so the grouping can be seen happening.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TextIO

import httpx
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from examples.fastapi_app.app import create_app
from examples.fastapi_app.telemetry import PROJECT, tracer_provider

CONVERSATIONS = {
    "Ada": ["Hello, I need help planning a trip.", "Somewhere warm in March.", "Thanks!"],
    "Bob": ["What is a session in tracing?", "And why group by it?", "Makes sense."],
}


async def converse(
    client: httpx.AsyncClient, who: str, messages: Sequence[str], out: TextIO
) -> str:
    session_id: str | None = None
    for number, message in enumerate(messages, 1):
        headers = {} if session_id is None else {"X-Session-Id": session_id}
        response = await client.post("/chat", json={"message": message}, headers=headers)
        response.raise_for_status()
        sent = "no X-Session-Id" if session_id is None else f"X-Session-Id {short(session_id)}"
        session_id = response.headers["x-session-id"]
        print(f"  {who} turn {number}: sent {sent:<27} -> answered {short(session_id)}", file=out)
    assert session_id is not None
    return session_id


def short(value: str) -> str:
    return value[:8] + "…"


def tree(spans: list[ReadableSpan], out: TextIO) -> None:
    children: dict[int | None, list[ReadableSpan]] = defaultdict(list)
    ids = {span.context.span_id for span in spans if span.context}
    for span in spans:
        parent = span.parent.span_id if span.parent and span.parent.span_id in ids else None
        children[parent].append(span)

    def show(span: ReadableSpan, depth: int) -> None:
        attributes = span.attributes or {}
        millis = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
        route = attributes.get("http.route", "-")
        session = short(str(attributes.get("session.id", "-")))
        name = "  " * depth + span.name
        print(
            f"      {name:<26} {millis:7.1f} ms   session.id={session}  http.route={route}",
            file=out,
        )
        for child in sorted(
            children[span.context.span_id if span.context else None],
            key=lambda s: s.start_time or 0,
        ):
            show(child, depth + 1)

    for root in sorted(children[None], key=lambda s: s.start_time or 0):
        show(root, 0)


def report(spans: Sequence[ReadableSpan], names: dict[str, str], out: TextIO) -> None:
    by_session: dict[str, dict[int, list[ReadableSpan]]] = defaultdict(lambda: defaultdict(list))
    for span in spans:
        session_id = str((span.attributes or {}).get("session.id", "(no session)"))
        trace_id = span.context.trace_id if span.context else 0
        by_session[session_id][trace_id].append(span)
    print(f"\nTraces grouped by session.id ({len(spans)} spans):", file=out)
    for session_id, traces in by_session.items():
        print(
            f"\n  session {session_id}  ({names.get(session_id, '?')}, {len(traces)} traces)",
            file=out,
        )
        ordered = sorted(traces.values(), key=lambda t: min(s.start_time or 0 for s in t))
        for number, trace_spans in enumerate(ordered, 1):
            trace_id = trace_spans[0].context.trace_id if trace_spans[0].context else 0
            print(f"    turn {number}, trace {trace_id:032x}", file=out)
            tree(trace_spans, out)


async def run(phoenix: str | None, out: TextIO) -> dict[str, str]:
    exporter = InMemorySpanExporter()
    provider = tracer_provider("chat-gateway", exporter)
    if phoenix:
        # Imported only for --phoenix: the plain demo needs no OTLP exporter.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        endpoint = f"{phoenix.rstrip('/')}/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    app = create_app(provider)
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, exclude_spans=["send", "receive"]
    )
    print(
        f"Two conversations, {sum(map(len, CONVERSATIONS.values()))} turns, "
        "through the FastAPI chat example (in-process):",
        file=out,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://chat.example") as client:
        ids = await asyncio.gather(
            *(converse(client, who, turns, out) for who, turns in CONVERSATIONS.items())
        )
    names = dict(zip(ids, CONVERSATIONS, strict=True))
    provider.force_flush()
    report(exporter.get_finished_spans(), names, out)
    provider.shutdown()
    return names


def phoenix_links(phoenix: str, names: dict[str, str], out: TextIO) -> None:
    sessions: list[dict[str, Any]] = []
    for _ in range(40):  # Phoenix ingests asynchronously: wait until it lists both sessions
        response = httpx.get(f"{phoenix.rstrip('/')}/v1/projects/{PROJECT}/sessions", timeout=5)
        if response.status_code == 200:
            sessions = [s for s in response.json()["data"] if s["session_id"] in names]
            if len(sessions) == len(names):
                break
        asyncio.run(asyncio.sleep(0.25))
    print(f"\nIn Phoenix, project {PROJECT!r}:", file=out)
    for session in sessions:
        link = f"{phoenix.rstrip('/')}/projects/{session['project_id']}/sessions/{session['id']}"
        print(f"  {names[session['session_id']]}: {link}", file=out)
    if len(sessions) < len(names):
        print("  (Phoenix has not listed every session yet: look again in a moment)", file=out)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--phoenix",
        default=os.environ.get("PHOENIX_COLLECTOR_ENDPOINT"),
        help="a Phoenix server's URL (default: $PHOENIX_COLLECTOR_ENDPOINT)",
    )
    args = parser.parse_args(argv)
    names = asyncio.run(run(args.phoenix, out))
    if args.phoenix:
        phoenix_links(args.phoenix, names, out)


if __name__ == "__main__":
    main()
