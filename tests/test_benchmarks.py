"""The benchmarks' own moving parts that the source they measure can break."""

from __future__ import annotations

from pathlib import Path

from benchmarks.ablation import STEPS, ablated
from tests.servers import ROOT


def test_every_ablation_step_still_finds_the_code_it_takes_out(tmp_path: Path) -> None:
    # benchmarks.ablation edits a copy of the package by text: a refactor that moves that text
    # must update the step (ablated() raises), not leave the README's figures unreproducible.
    copy = ablated(tmp_path, len(STEPS)) / "session_mw"
    for name in {name for _, edits in STEPS for name, _, _ in edits}:
        original = (ROOT / "src" / "session_mw" / name).read_text()
        assert (copy / name).read_text() != original
