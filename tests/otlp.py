"""A local OTLP/HTTP trace and log receiver, standing where a backend's endpoint would be (Langfuse,
Phoenix, LangSmith, Weave, any collector): it decodes what exporters really send, protobuf as on
the wire."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


@dataclass(frozen=True)
class Exported:
    """One span as it arrived: where it sits in its trace, and what its resource says."""

    name: str
    attributes: dict[str, Any]
    kind: int  # the OTLP enum: 1 internal, 2 server, 3 client
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    resource: dict[str, Any]


@dataclass
class Received:
    """What the receiver got: every span's name and attributes (``spans``; ``exported`` has the
    rest of each span), every log record's body and attributes (``logs``, sent to ``/v1/logs``),
    and every request's path and headers."""

    spans: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    exported: list[Exported] = field(default_factory=list)
    logs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # body, attributes
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


@contextmanager
def receiver() -> Iterator[tuple[str, Received]]:
    """Serve on 127.0.0.1 with a free port; yields the base URL and what arrives."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            with received.lock:
                received.requests.append((self.path, dict(self.headers.items())))
            if self.path.endswith("/v1/logs"):
                self._logs(ExportLogsServiceRequest.FromString(body))
                self._reply(ExportLogsServiceResponse().SerializeToString())
                return
            export = ExportTraceServiceRequest.FromString(body)
            with received.lock:
                for resource_spans in export.resource_spans:
                    resource = _attributes(resource_spans.resource.attributes)
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            attributes = _attributes(span.attributes)
                            received.spans.append((span.name, attributes))
                            received.exported.append(
                                Exported(
                                    span.name,
                                    attributes,
                                    span.kind,
                                    span.trace_id.hex(),
                                    span.span_id.hex(),
                                    span.parent_span_id.hex(),
                                    resource,
                                )
                            )
            self._reply(ExportTraceServiceResponse().SerializeToString())

        def _logs(self, export: ExportLogsServiceRequest) -> None:
            with received.lock:
                for resource_logs in export.resource_logs:
                    for scope_logs in resource_logs.scope_logs:
                        for record in scope_logs.log_records:
                            body = _value(record.body)
                            received.logs.append((body, _attributes(record.attributes)))

        def _reply(self, reply: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test reads what arrived, not an access log

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
