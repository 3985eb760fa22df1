"""Interleaved-rounds timing shared by the benchmarks: medians and ratios, never single times.

Every round runs every variant once, in a shuffled order, so that load from the rest of a shared
machine falls on all of them alike; the overhead of a variant in a round is its time minus the
baseline's time in that same round, and the table reports the median over rounds.
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable, Mapping

#: The valid id every benchmark request carries when it sends a header.
SESSION_ID = "0b5f8f0e-3c7e-4e36-9a55-4a8b3f1f0f0e"

#: A variant: runs ``n`` requests and returns the elapsed seconds.
Variant = Callable[[int], float]


def interleaved(variants: Mapping[str, Variant], *, rounds: int, n: int) -> dict[str, list[float]]:
    """Per-request microseconds of every variant, one list entry per round."""
    names = list(variants)
    for name in names:  # warm-up: imports, caches, the id pool
        variants[name](max(n // 10, 10))
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        random.shuffle(names)
        for name in names:
            times[name].append(variants[name](n) / n * 1e6)
    return times


def overheads(times: Mapping[str, list[float]], baseline: str) -> dict[str, float]:
    """Median over rounds of each variant's per-request time minus the baseline's, same round."""
    base = times[baseline]
    return {
        name: statistics.median(t - b for t, b in zip(per_round, base, strict=True))
        for name, per_round in times.items()
        if name != baseline
    }


def table(
    title: str,
    times: Mapping[str, list[float]],
    baseline: str,
    reference: str,
    unit: str = "request",
) -> tuple[str, dict[str, float]]:
    """A Markdown table of medians, overheads and overhead ratios against ``reference``."""
    extra = overheads(times, baseline)
    lines = [
        f"**{title}**",
        "",
        f"| variant | median us/{unit} | overhead us | overhead vs {reference} |",
        "|---|---:|---:|---:|",
        f"| {baseline} | {statistics.median(times[baseline]):.2f} | - | - |",
    ]
    for name, over in sorted(extra.items(), key=lambda item: item[1]):
        ratio = over / extra[reference] if extra[reference] > 0 else float("nan")
        lines.append(
            f"| {name} | {statistics.median(times[name]):.2f} | {over:.2f} | {ratio:.2f}x |"
        )
    return "\n".join(lines), extra


Suites = dict[str, tuple[dict[str, Variant], str, str]]


def main(description: str, suites: Callable[[], Suites], unit: str = "request") -> None:
    """The command line of an overhead benchmark: every table of ``suites()``, interleaved."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument(f"--{unit}s", dest="n", type=int, default=2000)
    args = parser.parse_args()
    for title, (variants, baseline, reference) in suites().items():
        times = interleaved(variants, rounds=args.rounds, n=args.n)
        text, _ = table(title, times, baseline, reference, unit)
        print(text, end="\n\n")
    print(f"({args.rounds} interleaved rounds of {args.n} {unit}s; medians over rounds)")
