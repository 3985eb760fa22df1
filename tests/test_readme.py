"""The README as a front door: short, naming every framework and integration, its blocks
runnable as they stand (tests/test_docs.py runs them, with the docs' blocks, through
tests/snippets.py: the apps answer with the session id they were sent, the console exporter
prints the spans with it)."""

from __future__ import annotations

from tests.snippets import ROOT, blocks

README = ROOT / "README.md"
BLOCKS = blocks(README)


def test_the_readme_is_a_front_door() -> None:
    assert len(README.read_text().splitlines()) <= 300
    assert len(BLOCKS) >= 5
    assert not [block.name for block in BLOCKS if block.not_run is not None]


def test_the_readme_names_every_framework_and_integration() -> None:
    text = README.read_text()
    for name in [
        "FastAPI",
        "Starlette",
        "Flask",
        "Django",
        "Litestar",
        "Quart",
        "Falcon",
        "Celery",
        "RQ",
        "huey",
        "Dramatiq",
        "taskiq",
        "arq",
        "MCP",
        "structlog",
        "httpx",
        "requests",
        "Phoenix",
        "Langfuse",
        "Logfire",
        "LangSmith",
        "Weave",
    ]:
        assert name in text, name
