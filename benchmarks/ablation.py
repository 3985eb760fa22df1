"""What session-mw's guarantees cost: a request with the header, with them taken out one by one.

    python -m benchmarks.ablation [--requests 2000]
    python -m benchmarks.ablation --server [--requests 1000] [--windows 3] [--clients 32]

Copies ``src/session_mw`` to a temporary directory, takes the guarantees the hand-written
``using_session`` middleware lacks out of the copy one at a time (each step keeps the ones
before), and counts each copy's instructions per request under callgrind, as
``benchmarks.instructions`` does: through the ASGI adapter beside the hand-written middleware,
and through the Flask extension beside flask-log-request-id. With ``--server``, under load
instead: each copy serves the minimal Starlette endpoint in a real uvicorn, counted inside the
server with one client and with 32 keep-alive clients (``benchmarks.server_instructions``),
beside the hand-written middleware and asgi-correlation-id. The copies are for measuring only:
each step breaks what the tests check.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from benchmarks import server_instructions
from benchmarks.instructions import ROOT, importing, per_request

# (kind, suite title, bare variant, session-mw's variant, the peer it is compared with)
SUITES = [
    (
        "asgi",
        "with an incoming X-Session-Id header",
        "bare app",
        "session-mw",
        "using_session (hand-written)",
    ),
    (
        "wsgi",
        "Flask, with an incoming X-Session-Id header",
        "bare Flask app",
        "session-mw (Flask extension)",
        "flask-log-request-id",
    ),
]

# (what goes, [(file, text in main, text in the copy)]), applied cumulatively.
STEPS: list[tuple[str, list[tuple[str, str, str]]]] = [
    (
        "validation of the incoming id",
        [
            (
                "_pipeline.py",
                "if header is not None and self.trust_incoming and self.validate(header):",
                "if header is not None:",
            )
        ],
    ),
    (
        "exactly one session header (the look for the app's own)",
        [
            (
                "_headers.py",
                "                for name, _ in copied:\n"
                "                    if name.lower() == key:\n"
                "                        return copied  # the app wrote the header: see below\n",
                "",
            )
        ],
    ),
    (
        "the metadata JSON in the OTel context",
        [
            (
                "_bridge.py",
                "        values[METADATA] = _metadata(attributes, before.get(METADATA))\n",
                "",
            )
        ],
    ),
    (
        "session-mw's own ContextVar",
        [
            (
                "_scope.py",
                "return opened, _current.set(opened), attach(",
                "return opened, None, attach(",
            ),
            ("_scope.py", "        _current.reset(token)", "        pass"),
        ],
    ),
    (
        "the late http.route",
        [
            (
                "_pipeline.py",
                "self._late = None if io is None else io.late_route",
                "self._late = None",
            )
        ],
    ),
]


def ablated(target: Path, steps: int) -> Path:
    """A copy of the package at ``target`` with the first ``steps`` steps applied."""
    package = target / "session_mw"
    shutil.copytree(
        ROOT / "src" / "session_mw", package, ignore=shutil.ignore_patterns("__pycache__")
    )
    for _, edits in STEPS[:steps]:
        for name, old, new in edits:
            source = package / name
            text = source.read_text()
            if text.count(old) != 1:  # the code moved on: update the step, never measure a guess
                raise RuntimeError(f"{name} no longer holds exactly one {old!r}")
            source.write_text(text.replace(old, new))
    return target


def counted(kind: str, title: str, variant: str, n: int, path: Path) -> float:
    """``per_request`` with the package copy at ``path`` imported instead of ``src``."""
    return per_request(kind, title, variant, n, importing(path))


def under_load(copies: list[Path], requests: int, clients: int, windows: int) -> None:
    """The Starlette server suite's session-mw with each copy, beside its bare app and peers."""
    suite = server_instructions.SUITES["starlette"]
    bare_app, ours = next(iter(suite.variants)), "session-mw"

    def rows(name: str, copy: Path) -> dict[int, server_instructions.Row]:
        return server_instructions.measure(suite, name, requests, clients, windows, package=copy)

    bare = rows(bare_app, copies[0])
    peers = {peer: rows(peer, copies[0]) for peer in suite.peers}
    steps = [rows(ours, copy) for copy in copies]
    heads = ["variant", "clients", "overhead", *(f"vs {p}" for p in peers), "in the collector",
             "the step saves"]  # fmt: skip
    title = f"**{suite.title}, guarantees taken out one by one** (per request, inside the server)"
    lines = server_instructions.heading(title, heads)
    for c in (1, clients):
        theirs = {p: by[c].instructions - bare[c].instructions for p, by in peers.items()}
        over = [by[c].instructions - bare[c].instructions for by in steps]
        for step, by in enumerate(steps):
            name = ours if step == 0 else f"... without {STEPS[step - 1][0]}"
            saved = "-" if step == 0 else f"{over[step - 1] - over[step]:,.0f}"
            ratios = [f"{over[step] / t:.2f}x" for t in theirs.values()]
            lines.append(
                f"| {name} | {c} | {over[step]:+,.0f} | {' | '.join(ratios)} "
                f"| {by[c].collector:,.0f} | {saved} |"
            )
    print("\n".join(lines) + "\n", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=None, help="2000; 1000 per window")
    parser.add_argument("--server", action="store_true", help="inside a real uvicorn, under load")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--windows", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        copies = [ablated(Path(workdir) / str(steps), steps) for steps in range(len(STEPS) + 1)]
        if args.server:
            under_load(copies, args.requests or 1000, args.clients, args.windows)
            return
        n = args.requests or 2000
        for kind, title, bare_app, ours, peer in SUITES:
            bare = counted(kind, title, bare_app, n, copies[0])
            theirs = counted(kind, title, peer, n, copies[0]) - bare
            overheads = [counted(kind, title, ours, n, copy) - bare for copy in copies]
            lines = [
                f"**{title}, guarantees taken out one by one** (instructions per request)",
                "",
                f"| variant | overhead | vs {peer} | the step saves |",
                "|---|---:|---:|---:|",
                f"| {peer} | {theirs:,.0f} | 1.00x | - |",
            ]
            for steps, overhead in enumerate(overheads):
                name = ours if steps == 0 else f"... without {STEPS[steps - 1][0]}"
                saved = "-" if steps == 0 else f"{overheads[steps - 1] - overhead:,.0f}"
                lines.append(f"| {name} | {overhead:,.0f} | {overhead / theirs:.2f}x | {saved} |")
            print("\n".join(lines) + "\n", flush=True)
    print(f"(callgrind; {n} requests per variant after 200 warm-up requests)")


if __name__ == "__main__":
    main()
