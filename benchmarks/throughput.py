"""Requests per second through real servers on loopback, with and without session-mw.

    python -m benchmarks.throughput [--sets 3] [--rounds 5] [--seconds 2] [--connections 32]

Every variant is served by its own server process on 127.0.0.1: uvicorn (one worker, httptools)
for the ASGI variants, gunicorn (one gthread worker, 4 threads) for the Flask ones. ``wrk`` (from
Debian: ``apt-get install wrk``) loads one server at a time, every request carrying an
``X-Session-Id``, in rounds that visit every variant in a shuffled order; the table reports the
median requests per second over all rounds and its ratio to the bare app.

This machine is shared and noisy, so the benchmark works to make runs comparable: a server
process's speed depends on where its memory and hash tables land, so servers start with a fixed
``PYTHONHASHSEED`` and, where ``setarch -R`` exists, without address randomization; each set of
rounds starts fresh server processes; where ``taskset`` exists, servers are pinned to one core
and wrk to another. The "pass-through middleware" row (an ASGI middleware that only calls the
app) shows how far apart two practically identical servers still land.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

from benchmarks.harness import SESSION_ID
from tests.servers import free_port, running

# Title, server kind, path, {variant: attribute of benchmarks.apps}; the bare app comes first.
SUITES = [
    ("uvicorn, a minimal Starlette endpoint", "uvicorn", "/chat/42", {
        "bare Starlette app": "bare",
        "pass-through middleware (noise floor)": "passthrough",
        "session-mw": "session_mw",
        "asgi-correlation-id": "asgi_correlation_id",
        "OTel ASGI instrumentation": "otel",
        "OTel ASGI instrumentation + session-mw": "otel_and_session_mw",
    }),
    ("uvicorn, a typical FastAPI endpoint (typed parameters, response model)", "uvicorn",
     "/chat/42?turn=2", {
        "bare FastAPI app": "fastapi_bare",
        "session-mw": "fastapi_session_mw",
    }),
    ("gunicorn gthread, a minimal Flask endpoint", "gunicorn", "/chat/42", {
        "bare Flask app": "flask_bare",
        "session-mw (Flask extension)": "flask_session_mw",
    }),
]  # fmt: skip


# One core for the servers, another for wrk, when the machine has two and can pin processes.
_CAN_PIN = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
_NO_ASLR = ["setarch", "-R"] if shutil.which("setarch") else []


def _pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if _CAN_PIN else []


def server_args(server: str, app: str, port: int) -> list[str]:
    """``python -m`` arguments of a benchmark server: uvicorn (httptools) or gunicorn (one
    gthread worker, 4 threads) serving ``app`` on 127.0.0.1:``port``."""
    if server == "uvicorn":
        return ["uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--http",
                "httptools", "--no-access-log", "--log-level", "warning"]  # fmt: skip
    # No worker timeout: under callgrind a worker is far slower to boot and beat than usual.
    return ["gunicorn", "--worker-class", "gthread", "--threads", "4", "--timeout", "0",
            "--bind", f"127.0.0.1:{port}", "--log-level", "warning", app]  # fmt: skip


@contextmanager
def server(kind: str, app: str, path: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    args = server_args(kind, f"benchmarks.apps:{app}", port)
    with running(args, port, env=env, prefix=[*_NO_ASLR, *_pinned(0)]) as url:
        yield f"{url}{path}"


def load(url: str, seconds: int, connections: int) -> float:
    done = subprocess.run(
        [*_pinned(1), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
         "-H", f"X-Session-Id: {SESSION_ID}", url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if found is None or "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise RuntimeError(f"wrk run failed:\n{done.stdout}")
    return float(found.group(1))


def measure(
    kind: str, path: str, variants: dict[str, str], args: argparse.Namespace
) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for _ in range(args.sets):
        with ExitStack() as stack:
            urls = {name: stack.enter_context(server(kind, variants[name], path)) for name in names}
            for url in urls.values():
                load(url, 1, args.connections)  # warm-up: imports, caches, connections
            for _ in range(args.rounds):
                random.shuffle(names)
                for name in names:
                    results[name].append(load(urls[name], args.seconds, args.connections))
    return results


def table(title: str, results: dict[str, list[float]]) -> str:
    base = statistics.median(next(iter(results.values())))
    lines = [f"**{title}**", "", "| variant | median requests/s | vs bare app |", "|---|---:|---:|"]
    for name, values in results.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:,.0f} | {median / base:.3f}x |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sets", type=int, default=3, help="fresh server processes per variant")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per set of servers")
    parser.add_argument("--seconds", type=int, default=2, help="length of one wrk run")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    for title, kind, path, variants in SUITES:
        print(table(title, measure(kind, path, variants, args)), end="\n\n", flush=True)
    print(
        f"({args.sets} sets of fresh servers x {args.rounds} shuffled rounds of {args.seconds} s "
        f"per variant; wrk -t1 -c{args.connections}"
        f"{'; servers and wrk pinned to separate cores' if _CAN_PIN else ''}; medians)"
    )


if __name__ == "__main__":
    main()
