"""Every Python block of the README and of the documentation site (docs/**/*.md) runs, and what
it defines works: tests/snippets.py says how each is put to work. Also: the options table
against the options' declaration, the API reference against the public modules, the benchmarks
chart against the benchmark tables."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest

from session_mw._options import Options
from tests.snippets import ROOT, Block, blocks, cases, run_and_check_output

DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
BLOCKS = [block for page in PAGES for block in blocks(page)]
README_BLOCKS = blocks(ROOT / "README.md")  # tests/test_readme.py checks the README's own rules


def test_every_page_is_found_and_most_have_blocks() -> None:
    assert len(PAGES) >= 20
    assert len(BLOCKS) >= 40
    skipped = [block.name for block in BLOCKS if block.not_run is not None]
    assert len(skipped) <= 2, skipped  # fragments are the exception


pytestmark = pytest.mark.usefixtures("restored_logging")


@pytest.mark.parametrize("block", cases(README_BLOCKS + BLOCKS))
def test_block_runs(
    block: Block, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    run_and_check_output(block, monkeypatch, capfd)


def test_the_options_table_is_the_options_declaration() -> None:
    """docs/options.md lists every option of session_mw._options.Options, with its default."""
    text = (DOCS / "options.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| (.+?) \|", text, flags=re.M)
    fields = {field.name: field.default for field in dataclasses.fields(Options)}
    assert [name for name, _ in rows] == list(fields)
    literal = {name: default for name, default in rows if default.startswith("`")}
    for name, written in literal.items():
        value = fields[name]
        shown = list(value) if isinstance(value, tuple) else value
        assert written == f"`{shown!r}`".replace("'", '"'), (name, written, value)
    # The ones written in words are the callables, whose default is None (built in).
    assert {name for name, _ in rows} - set(literal) == {"generator", "validator"}
    assert fields["generator"] is None
    assert fields["validator"] is None


def test_the_api_reference_covers_every_public_module() -> None:
    public = {"session_mw"} | {
        f"session_mw.{path.stem}"
        for path in (ROOT / "src" / "session_mw").glob("*.py")
        if not path.stem.startswith("_")
    }
    reference = "".join(page.read_text() for page in (DOCS / "reference").glob("*.md"))
    assert set(re.findall(r"^::: ([\w.]+)$", reference, flags=re.M)) == public


def test_every_page_is_in_the_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in PAGES:
        name = page.relative_to(DOCS).as_posix()
        assert f": {name}\n" in nav, name


def test_the_benchmarks_chart_is_drawn_from_the_tables() -> None:
    check = [sys.executable, str(ROOT / "scripts" / "chart"), "--check"]
    result = subprocess.run(check, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_the_readme_figures_are_the_benchmarks_pages() -> None:
    """The README's one line of headline figures quotes the measured tables, unchanged."""
    readme = (ROOT / "README.md").read_text()
    benchmarks = (DOCS / "benchmarks.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("**Overhead"))
    for figure in re.findall(r"\d{1,3}(?:,\d{3})*(?:\.\d+)?x?", line.split("**", 2)[2]):
        assert figure in benchmarks, figure
