"""OpenTelemetry log records carry the session: SessionLogRecordProcessor on the SDK's logger
provider, for records from the SDK's own loggers and for stdlib logging bridged into it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs import export as log_export
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from session_mw import SessionMiddleware, session
from session_mw.otel import SessionLogRecordProcessor

# The SDK's name for it now; older SDKs (1.20 among them) call it InMemoryLogExporter.
InMemoryExporter: Any = getattr(log_export, "InMemoryLogRecordExporter", None)
if InMemoryExporter is None:  # pragma: no cover  (older OpenTelemetry SDKs)
    InMemoryExporter = log_export.InMemoryLogExporter


def bridge_handler(provider: LoggerProvider) -> logging.Handler:
    """The handler that bridges stdlib logging into ``provider``: opentelemetry-instrumentation-
    logging's where installed (the SDK's is deprecated there), the SDK's before."""
    handler: Any
    try:
        from opentelemetry.instrumentation.logging.handler import LoggingHandler as handler
    except ImportError:
        from opentelemetry.sdk._logs import LoggingHandler as handler
    bridge: logging.Handler = handler(logger_provider=provider)
    return bridge


@pytest.fixture
def logs() -> Iterator[tuple[LoggerProvider, Any]]:
    provider = LoggerProvider()
    exporter = InMemoryExporter()
    provider.add_log_record_processor(SessionLogRecordProcessor())
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
def bridged(logs: tuple[LoggerProvider, Any]) -> Iterator[tuple[logging.Logger, Any]]:
    provider, exporter = logs
    logger = logging.getLogger("tests.bridged")
    handler = bridge_handler(provider)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, exporter
    logger.removeHandler(handler)


def attributes(exporter: Any) -> list[dict[str, Any]]:
    return [dict(data.log_record.attributes or {}) for data in exporter.get_finished_logs()]


def test_bridged_stdlib_records_carry_the_session(bridged: tuple[logging.Logger, Any]) -> None:
    logger, exporter = bridged
    with session("conv-1", attributes={"app.tenant": "acme"}):
        logger.info("inside")
    logger.info("outside")
    inside, outside = attributes(exporter)
    assert inside["session.id"] == inside["gen_ai.conversation.id"] == "conv-1"
    assert inside["app.tenant"] == "acme"
    assert "session.id" not in outside
    assert "gen_ai.conversation.id" not in outside


def test_a_records_own_attributes_are_never_overwritten(
    bridged: tuple[logging.Logger, Any],
) -> None:
    logger, exporter = bridged
    with session("conv-1", attributes={"app.tenant": "acme"}):
        logger.info("a sub-agent's", extra={"session.id": "sub-1", "app.tenant": "own"})
    (record,) = attributes(exporter)
    assert record["session.id"] == "sub-1"
    assert record["app.tenant"] == "own"
    assert record["gen_ai.conversation.id"] == "conv-1"


def test_the_names_the_id_goes_under_are_configurable() -> None:
    provider = LoggerProvider()
    exporter = InMemoryExporter()
    provider.add_log_record_processor(SessionLogRecordProcessor(["wandb.thread_id"]))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("tests.sdk-names")
    handler = bridge_handler(provider)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # not the root's: a Celery worker in another test set it
    logger.propagate = False
    try:
        with session("conv-2"):
            logger.warning("turn")
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
    (record,) = attributes(exporter)
    assert record["wandb.thread_id"] == "conv-2"
    assert "session.id" not in record
    assert "gen_ai.conversation.id" not in record


def test_records_logged_during_a_request_carry_its_session_and_route(
    bridged: tuple[logging.Logger, Any],
) -> None:
    logger, exporter = bridged

    async def chat(request: Request) -> PlainTextResponse:
        logger.info("turn")
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/chat/{cid}", chat)])
    app.add_middleware(SessionMiddleware)
    TestClient(app).get("/chat/7", headers={"X-Session-Id": "conv-3"})
    (record,) = attributes(exporter)
    assert record["session.id"] == record["gen_ai.conversation.id"] == "conv-3"
    assert record["url.path"] == "/chat/7"
    assert record["http.route"] == "/chat/{cid}"


@pytest.mark.parametrize(("names", "error"), [("session.id", TypeError), ([], ValueError)])
def test_a_wrong_list_of_names_says_what_to_give(names: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"SessionLogRecordProcessor|id_attributes="):
        SessionLogRecordProcessor(names)


def test_records_exported_over_otlp_carry_the_session() -> None:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    from tests.otlp import receiver

    with receiver() as (url, received):
        provider = LoggerProvider()
        provider.add_log_record_processor(SessionLogRecordProcessor())
        provider.add_log_record_processor(
            SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{url}/v1/logs"))
        )
        logger = logging.getLogger("tests.otlp-logs")
        handler = bridge_handler(provider)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        try:
            with session("conv-4", attributes={"url.path": "/chat"}):
                logger.info("a turn")
            logger.info("between turns")
        finally:
            logger.removeHandler(handler)
            provider.shutdown()
    records = dict(received.logs)
    assert records["a turn"]["session.id"] == "conv-4"
    assert records["a turn"]["gen_ai.conversation.id"] == "conv-4"
    assert records["a turn"]["url.path"] == "/chat"
    assert "session.id" not in records["between turns"]
    assert {path for path, _ in received.requests} == {"/v1/logs"}
