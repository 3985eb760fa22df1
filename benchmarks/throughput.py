"""Requests per second through real servers on loopback, with and without session-mw.

    python -m benchmarks.throughput [--rounds 5] [--seconds 5] [--connections 32]

Each variant is served by its own server process on 127.0.0.1: uvicorn (one worker, httptools)
for the ASGI variants, gunicorn (one gthread worker, 4 threads) for the Flask ones. ``wrk`` (from
Debian: ``apt-get install wrk``) loads one server at a time for a fixed duration, every request
carrying an ``X-Session-Id``; rounds are interleaved in a shuffled order, and the table reports
the median requests per second and its ratio to the bare app. On a 2-core machine the server
gets one core and wrk the other.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

from tests.servers import free_port, running

ASGI = {
    "bare Starlette app": "bare",
    "session-mw": "session_mw",
    "asgi-correlation-id": "asgi_correlation_id",
    "OTel ASGI instrumentation": "otel",
    "OTel ASGI instrumentation + session-mw": "otel_and_session_mw",
}
WSGI = {"bare Flask app": "flask_bare", "session-mw (Flask extension)": "flask_session_mw"}


@contextmanager
def server(kind: str, app: str) -> Iterator[str]:
    port = free_port()
    target = f"benchmarks.apps:{app}"
    if kind == "asgi":
        command = ["uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
                   "--no-access-log", "--http", "httptools"]  # fmt: skip
    else:
        command = ["gunicorn", "--worker-class", "gthread", "--threads", "4",
                   "--bind", f"127.0.0.1:{port}", target]  # fmt: skip
    with running([*command, "--log-level", "warning"], port) as url:
        yield f"{url}/chat/42"


def load(url: str, seconds: int, connections: int) -> float:
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-H",
         "X-Session-Id: 0b5f8f0e-3c7e-4e36-9a55-4a8b3f1f0f0e", url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if found is None or "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise RuntimeError(f"wrk run failed:\n{done.stdout}")
    return float(found.group(1))


def measure(
    kind: str, variants: dict[str, str], rounds: int, seconds: int, connections: int
) -> dict[str, list[float]]:
    with ExitStack() as stack:
        urls = {name: stack.enter_context(server(kind, app)) for name, app in variants.items()}
        for url in urls.values():
            load(url, 1, connections)  # warm-up
        results: dict[str, list[float]] = {name: [] for name in urls}
        names = list(urls)
        for _ in range(rounds):
            random.shuffle(names)
            for name in names:
                results[name].append(load(urls[name], seconds, connections))
        return results


def table(title: str, results: dict[str, list[float]], baseline: str) -> str:
    base = statistics.median(results[baseline])
    lines = [f"**{title}**", "", "| variant | median requests/s | vs bare app |", "|---|---:|---:|"]
    for name, values in results.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:,.0f} | {median / base:.3f}x |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    for title, kind, variants, baseline in (
        ("uvicorn (ASGI)", "asgi", ASGI, "bare Starlette app"),
        ("gunicorn gthread (WSGI)", "wsgi", WSGI, "bare Flask app"),
    ):
        results = measure(kind, variants, args.rounds, args.seconds, args.connections)
        print(table(title, results, baseline), end="\n\n")
    print(
        f"({args.rounds} interleaved rounds of {args.seconds} s per variant, wrk -t1 "
        f"-c{args.connections}; medians over rounds)"
    )


if __name__ == "__main__":
    main()
