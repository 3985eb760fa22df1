"""Shared fixtures: an in-memory OTel exporter, and a check that no test leaks a session."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from session_mw import current_session

# The Django test project's modules need Django set up (tests/test_django.py does it): they hold
# no tests, so --doctest-modules must not import them on their own.
collect_ignore = ["django_project"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider
    tracer_provider.shutdown()


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """README and docs blocks (tests/snippets.py) configure logging (and structlog) globally:
    put both back afterwards. The modules running them use it on every test (``pytestmark``)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger):
            logger.disabled = False
    if "structlog" in sys.modules:
        sys.modules["structlog"].reset_defaults()


@pytest.fixture(autouse=True)
def _no_leaked_session() -> Iterator[None]:
    """Every test must leave neither a session nor session.id in the OTel context behind."""
    yield
    assert current_session() is None
    assert otel_context.get_value("session.id") is None
