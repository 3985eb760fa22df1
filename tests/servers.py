"""Real servers for integration tests: started on 127.0.0.1 with a free port, always stopped."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running(
    args: Sequence[str],
    port: int,
    *,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    prefix: Sequence[str] = (),
    log: IO[str] | None = None,
    program: bool = False,
) -> Iterator[str]:
    """Run ``python -m <args>`` from the repository root until the port answers; yield its URL.

    ``prefix`` goes before the interpreter (``taskset -c 0``, say); with ``program``, ``args``
    is the whole command line of a server that is no Python module (Debian's redis-server). The
    server's output goes to ``log`` when given (for tests that read it; a pipe nobody reads could
    fill and block it)."""
    env = dict(os.environ if env is None else env)
    # The repository first; a caller's own path after it (a benchmark measuring another copy of
    # the package puts that copy there).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        list(args) if program else [*prefix, sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE if log is None else log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                raise RuntimeError(f"{args[0]} exited with {process.returncode}:\n{output}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{args[0]} did not listen on port {port}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


@contextmanager
def redis() -> Iterator[str]:
    """A redis-server of its own on a free loopback port (Debian's: ``apt-get install
    redis-server``); yields its URL."""
    if not os.path.exists(REDIS):
        raise RuntimeError(f"no redis-server at {REDIS}: apt-get install redis-server")
    port = free_port()
    args = [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with running(args, port, program=True):
        yield f"redis://127.0.0.1:{port}"


def gunicorn(app: str, port: int) -> list[str]:
    """``python -m`` arguments for gunicorn's threaded worker serving ``app`` on ``port``."""
    return [
        "gunicorn",
        "--worker-class", "gthread",
        "--workers", "2",
        "--threads", "8",
        "--bind", f"127.0.0.1:{port}",
        "--log-level", "warning",
        app,
    ]  # fmt: skip


@asynccontextmanager
async def concurrent_turns(
    url: str, prefix: str, route: str, count: int = 100
) -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    """``count`` concurrent GETs of ``prefix`` + an id of their own, sent as ``X-Session-Id``
    too, to an endpoint answering as ``tests.frameworks.turn_answer``: each must answer 200 with
    its id, seen before and after a pause while the others run, and ``route``. Yields the client,
    for the test's further requests, and the ids."""
    # One connection per request, none reused. httpcore's pool bookkeeping grows with
    # requests x connections, so a burst of 500 lasts about 5 s on this machine: as long as
    # uvicorn's keep-alive timeout. A request sent on a pooled connection just as uvicorn
    # closes it for idleness fails with "Server disconnected without sending a response"
    # (or ReadError): the HTTP/1.1 keep-alive race, which httpx does not retry. It is what
    # failed on 3.12/3.13, where the timing happened to line up more often.
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        ids = [f"conv-{n:04d}" for n in range(count)]
        responses = await asyncio.gather(
            *(http.get(f"{prefix}{i}", headers={"X-Session-Id": i}) for i in ids)
        )
        for session_id, response in zip(ids, responses, strict=True):
            assert response.status_code == 200
            assert response.headers.get_list("x-session-id") == [session_id]
            assert response.json() == {"before": session_id, "after": session_id, "route": route}
        yield http, ids
