"""The benchmarks' own moving parts that the source they measure can break."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmarks.ablation import STEPS, ablated
from benchmarks.instructions import package_at
from benchmarks.server_instructions import Dump, load, parse
from tests.servers import ROOT, free_port, running


def test_every_ablation_step_still_finds_the_code_it_takes_out(tmp_path: Path) -> None:
    # benchmarks.ablation edits a copy of the package by text: a refactor that moves that text
    # must update the step (ablated() raises), not leave the README's figures unreproducible.
    copy = ablated(tmp_path, len(STEPS)) / "session_mw"
    for name in {name for _, edits in STEPS for name, _, _ in edits}:
        original = (ROOT / "src" / "session_mw" / name).read_text()
        assert (copy / name).read_text() != original


def test_the_server_benchmark_reads_calls_and_their_cost_from_a_callgrind_dump() -> None:
    # The format callgrind writes: a name in full the first time, by number after; each call's
    # inclusive cost on the line after its calls= line.
    dump = parse(
        "version: 1\nevents: Ir\n"
        "fn=(1) main\n0 10\n"
        "cfn=(2) _PyObject_GC_Link\ncalls=3 0\n0 60\n"
        "fn=(3) other\n0 5\n"
        "cfn=(2)\ncalls=2 0\n0 40\n"
        "cfn=(4) gc_collect_main\ncalls=1 0\n+2 500\n"
        "totals: 615\n"
    )
    assert dump == Dump(instructions=615, allocations=5, collector=500)


def test_the_server_benchmark_load_gets_every_answer_from_a_real_uvicorn() -> None:
    # load() speaks HTTP/1.1 keep-alive itself: every answer must be a 200 with a length, on
    # the measured route and on the marker route that has callgrind dump its counters.
    port = free_port()
    args = ["uvicorn", "benchmarks.apps:session_mw", "--port", str(port), "--log-level", "warning"]
    with running(args, port):
        load(port, "/chat/42", 50, 8)
        load(port, "/dump", 3, 1)
        with pytest.raises(RuntimeError, match="unexpected response"):
            load(port, "/no-such-route", 1, 1)


def test_the_package_at_a_revision_is_the_one_committed_there(tmp_path: Path) -> None:
    # benchmarks.instructions --against REV imports session_mw from this folder.
    committed = (package_at("HEAD", tmp_path) / "session_mw" / "_pipeline.py").read_text()
    assert committed == subprocess.run(
        ["git", "show", "HEAD:src/session_mw/_pipeline.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
