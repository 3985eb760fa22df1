"""The same benchmarks counted in CPU instructions (valgrind's callgrind) instead of seconds.

    python -m benchmarks.instructions [asgi|wsgi|django|frameworks ...] [--requests 2000]
        [--against REV [--layouts 5] [--only TITLE]]

Wall-clock medians on a shared machine move by tens of percent from run to run; instruction
counts do not (the same binary and inputs give the same count, whatever else the machine does).
Each variant runs twice under callgrind, with 0 and with N requests after the same warm-up; the
difference divided by N is its instructions per request, and its overhead is that minus the
baseline's. With ``--against REV``, session-mw's variants as committed at git revision REV and
at HEAD instead, side by side (each less its own bare app's count, medians over
``--layouts`` memory layouts; ``--only`` keeps the suites whose title starts so). Needs
valgrind (``apt-get install valgrind``); takes a few minutes.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median
from typing import Any

MODULES = {
    "asgi": "benchmarks.asgi_overhead",
    "wsgi": "benchmarks.wsgi_overhead",
    "django": "benchmarks.django_overhead",
    "frameworks": "benchmarks.frameworks_overhead",  # Litestar, Quart, Falcon
}
ROOT = Path(__file__).resolve().parent.parent


def suites(kind: str) -> Any:
    return importlib.import_module(MODULES[kind]).suites()


# With --against, layout k's processes first allocate k times this many byte strings (their
# lengths counting up from 0, cycling at 512) and keep them: what is imported after lands at
# other addresses.
LAYOUT = "BENCHMARK_LAYOUT"
_PADDING = 300


def run_variant(kind: str, title: str, name: str, n: int) -> None:
    layout = int(os.environ.get(LAYOUT, "0"))
    padding = [bytes(size % 512) for size in range(layout * _PADDING)]  # before any import
    variants, _, _ = suites(kind)[title]
    variants[name](200)  # warm-up, the same in both runs
    variants[name](n)
    del padding  # alive until here


def collected(command: list[str], stdin: str = "", env: dict[str, str] | None = None) -> int:
    """The instructions ``python COMMAND`` executes under callgrind."""
    # A fixed hash seed: string hashes, hence dict probes, change per process otherwise, and
    # the same code then measured up to 800 instructions per request apart from run to run.
    # No .pyc written: with --against's processes running side by side over one folder, the
    # first would compile what the others load, a cost that lands in one count, not both.
    env = {
        **(os.environ if env is None else env),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    with tempfile.NamedTemporaryFile() as out:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}",
             sys.executable, *command],
            cwd=ROOT, input=stdin, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no total:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_request(
    kind: str, title: str, name: str, n: int, env: dict[str, str] | None = None
) -> float:
    """One variant's instructions per request: N requests' count minus no request's, over N."""

    def count(requests: int) -> int:
        command = ["-m", "benchmarks.instructions", "--run", kind, title, name, str(requests)]
        return collected(command, env=env)

    return (count(n) - count(0)) / n


def package_at(revision: str, folder: Path) -> Path:
    """``folder``, holding ``src/session_mw`` as it was at git ``revision``; returns its ``src``."""
    archive = subprocess.run(
        ["git", "archive", revision, "src/session_mw"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def importing(folder: Path) -> dict[str, str]:
    """The environment of a process that imports ``session_mw`` from ``folder`` (a copy of the
    package, or the package at another revision) and the benchmarks from this checkout."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)])}


def overhead(
    kind: str, title: str, name: str, baseline: str, n: int, *, folder: Path, layout: int = 0
) -> float:
    """``name``'s instructions per request over ``baseline``'s, both importing from ``folder``,
    in memory layout ``layout``."""
    env = {**importing(folder), LAYOUT: str(layout)}
    return per_request(kind, title, name, n, env) - per_request(kind, title, baseline, n, env)


def against(kind: str, revision: str, n: int, layouts: int, only: str = "") -> None:
    """Every suite's session-mw variants, overhead over the bare app at ``revision`` and at
    HEAD, each the median over ``layouts`` memory layouts. Where objects land in memory decides
    how deep some hash lookups go (a ContextVar's hash is its address's), and Flask's request
    path makes dozens of them: one layout against another moves a Flask request by up to 4,000
    instructions, the same code, and so does a change of the environment the benchmark runs
    in. Each layout's processes allocate a different amount before importing anything
    (``run_variant``); a variant's counts, both sides and every layout, run side by side, as
    they do not depend on each other."""
    with tempfile.TemporaryDirectory() as workdir, ThreadPoolExecutor(os.cpu_count()) as pool:
        folders = {  # paths of one length
            side: package_at(rev, Path(workdir) / side)
            for side, rev in (("then", revision), ("head", "HEAD"))
        }
        for title, (variants, baseline, _) in suites(kind).items():
            if not title.startswith(only):
                continue
            lines = [
                f"**{title}**, session-mw's overhead over the {baseline} (instructions per "
                f"request, medians over {layouts} layouts)",
                "",
                f"| variant | at {revision} | at HEAD | change | layouts at {revision} | at HEAD |",
                "|---|---:|---:|---:|---|---|",
            ]
            for name in (name for name in variants if name.startswith("session-mw")):
                futures = {
                    side: [
                        pool.submit(
                            overhead, kind, title, name, baseline, n, folder=folder, layout=k
                        )
                        for k in range(layouts)
                    ]
                    for side, folder in folders.items()
                }
                counts = [sorted(f.result() for f in futures[side]) for side in folders]
                then, head = (median(side) for side in counts)
                spread = (f"{side[0]:,.0f}-{side[-1]:,.0f}" for side in counts)
                lines.append(
                    f"| {name} | {then:,.0f} | {head:,.0f} | {head - then:+,.0f} | "
                    + " | ".join(spread)
                    + " |"
                )
            print("\n".join(lines) + "\n", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "kinds", nargs="*", choices=[*MODULES, []], help=", ".join(MODULES) + " (default: all)"
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--against", metavar="REV", help="session-mw at REV beside it at HEAD")
    parser.add_argument("--layouts", type=int, default=5, help="with --against: medians over")
    parser.add_argument("--only", default="", metavar="TITLE", help="with --against: suites")
    parser.add_argument("--run", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        kind, title, name, n = args.run
        run_variant(kind, title, name, int(n))
        return
    n = args.requests
    if args.against:
        for kind in args.kinds or list(MODULES):
            against(kind, args.against, n, args.layouts, args.only)
        print(f"(callgrind; {n} requests per variant after 200 warm-up requests)")
        return
    for kind in args.kinds or list(MODULES):
        for title, (variants, baseline, reference) in suites(kind).items():
            counts = {name: per_request(kind, title, name, n) for name in variants}
            print(table(title, counts, baseline, reference))
    print(f"(callgrind; {n} requests per variant after 200 warm-up requests)")


def table(
    title: str, counts: dict[str, float], baseline: str, reference: str, unit: str = "request"
) -> str:
    """A Markdown table of instruction counts and overhead ratios against ``reference``."""
    over = {name: v - counts[baseline] for name, v in counts.items()}
    lines = [
        f"**{title}** (instructions per {unit})",
        "",
        f"| variant | instructions | overhead | overhead vs {reference} |",
        "|---|---:|---:|---:|",
    ]
    for name in sorted(counts, key=lambda v: over[v]):
        ratio = "-" if name == baseline else f"{over[name] / over[reference]:.2f}x"
        extra = "-" if name == baseline else f"{over[name]:,.0f}"
        lines.append(f"| {name} | {counts[name]:,.0f} | {extra} | {ratio} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
