"""Instructions per request counted inside real server processes, one client and 32 at a time.

    python -m benchmarks.server_instructions [starlette fastapi flask django-wsgi django-asgi
        litestar quart falcon-wsgi falcon-asgi] [--requests 1000] [--windows 3] [--clients 32]

Every variant is served by its own server on 127.0.0.1, started under valgrind's callgrind:
uvicorn (httptools) for Starlette, FastAPI, Litestar, Quart, Falcon's ASGI app and Django's ASGI
handler, gunicorn (one gthread worker, 4 threads) for Flask, Falcon's WSGI app and Django's WSGI
handler. After a warm-up, callgrind's counters
are dumped (by a request to the app's ``/dump``) around windows of N requests sent by one
keep-alive client, then by 32 concurrent keep-alive clients, each request with an
``X-Session-Id``. A window's count, less what the server does while idle for as long (its event
loop's timers, measured in an idle window), over N is its figure; the table gives the median
over windows. Counts do not depend on what else the machine does, so they show what wall clock
on a shared machine cannot: the cyclic garbage collector's share under concurrency.

Each row also gives the GC-tracked allocations per request (calls to ``_PyObject_GC_Link``, the
counter that triggers a collection) and the instructions spent in the cyclic collector
(``gc_collect_main``), with the most one window spent there: a full collection lands in some
windows and not others, which is why the figures are medians. Needs valgrind; the GC columns
need a CPython whose symbols callgrind can read (pyenv's builds; not every distribution's).
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from benchmarks.harness import SESSION_ID
from benchmarks.throughput import server_args
from tests.servers import free_port, running


@dataclass(frozen=True)
class Suite:
    title: str
    server: str  # "uvicorn" or "gunicorn"
    path: str
    variants: Mapping[str, tuple[str, str]]  # name: (app's import path, SESSION_MW_BENCH_DJANGO)
    peers: tuple[str, ...]  # the variants session-mw's overhead is compared with
    marker: str = "/dump"  # the apps' endpoint that calls MARKER


DJANGO = "benchmarks.django_server"
FRAMEWORKS = "benchmarks.framework_apps"
THREAD = f"/threads/{SESSION_ID}"  # benchmarks.frameworks_overhead's route
HAND_WRITTEN = "using_session (hand-written)"
ASGI_PEERS = (HAND_WRITTEN, "asgi-correlation-id")


def _framework(name: str, prefix: str, ours: Mapping[str, str]) -> Suite:
    """An ASGI framework's suite in uvicorn: its bare app, session-mw's variants (name: the
    attribute after ``prefix_`` in benchmarks.framework_apps) and the two ASGI peers."""
    variants = {f"bare {name}": "bare", **ours, "asgi-correlation-id": "asgi_correlation_id",
                HAND_WRITTEN: "using_session"}  # fmt: skip
    return Suite(
        f"uvicorn, a minimal {name} endpoint",
        "uvicorn",
        THREAD,
        {
            variant: (f"{FRAMEWORKS}:{prefix}_{attribute}", "")
            for variant, attribute in variants.items()
        },
        ASGI_PEERS,
    )


SUITES = {
    "starlette": Suite("uvicorn, a minimal Starlette endpoint", "uvicorn", "/chat/42", {
        "bare Starlette app": ("benchmarks.apps:bare", ""),
        "pass-through middleware": ("benchmarks.apps:passthrough", ""),
        "session-mw": ("benchmarks.apps:session_mw", ""),
        "asgi-correlation-id": ("benchmarks.apps:asgi_correlation_id", ""),
        HAND_WRITTEN: ("benchmarks.apps:using_session", ""),
    }, ASGI_PEERS),
    "fastapi": Suite("uvicorn, a typical FastAPI endpoint", "uvicorn", "/chat/42?turn=2", {
        "bare FastAPI app": ("benchmarks.apps:fastapi_bare", ""),
        "session-mw": ("benchmarks.apps:fastapi_session_mw", ""),
    }, ()),
    "flask": Suite("gunicorn gthread, a minimal Flask endpoint", "gunicorn", "/chat/42", {
        "bare Flask app": ("benchmarks.apps:flask_bare", ""),
        "session-mw": ("benchmarks.apps:flask_session_mw", ""),
        "flask-log-request-id": ("benchmarks.apps:flask_log_request_id", ""),
    }, ("flask-log-request-id",)),
    "django-wsgi": Suite("gunicorn gthread, Django's WSGI handler, a sync view", "gunicorn",
                         "/chat/42", {
        "bare Django": (f"{DJANGO}:wsgi", "bare"),
        "session-mw": (f"{DJANGO}:wsgi", "session-mw"),
        "django-guid": (f"{DJANGO}:wsgi", "django-guid"),
    }, ("django-guid",)),
    "django-asgi": Suite("uvicorn, Django's ASGI handler, an async view", "uvicorn", "/achat/42", {
        "bare Django": (f"{DJANGO}:asgi", "bare"),
        "session-mw": (f"{DJANGO}:asgi", "session-mw"),
        "django-guid": (f"{DJANGO}:asgi", "django-guid"),
    }, ("django-guid",), "/adump"),
    "litestar": _framework("Litestar", "litestar", {
        "session-mw plugin": "session_mw", "session-mw middleware": "session_mw_middleware",
    }),
    "quart": _framework("Quart", "quart", {"session-mw extension": "session_mw"}),
    "falcon-wsgi": Suite("gunicorn gthread, a minimal falcon.App endpoint", "gunicorn", THREAD, {
        "bare falcon.App": (f"{FRAMEWORKS}:falcon_bare", ""),
        "session-mw": (f"{FRAMEWORKS}:falcon_session_mw", ""),
        "minimal ContextVar wrapper": (f"{FRAMEWORKS}:falcon_contextvar", ""),
        HAND_WRITTEN: (f"{FRAMEWORKS}:falcon_using_session", ""),
    }, (HAND_WRITTEN, "minimal ContextVar wrapper")),
    "falcon-asgi": _framework("falcon.asgi.App", "falcon_asgi", {"session-mw": "session_mw"}),
}  # fmt: skip

MARKER = "binascii_crc_hqx"  # the C function mark() calls: callgrind dumps as it is entered
GC_LINK = "_PyObject_GC_Link"  # every GC-tracked allocation; it counts towards a collection
GC_COLLECT = "gc_collect_main"  # one run of the cyclic collector
IDLE_SECONDS = 5.0


def mark() -> None:
    """What the apps' marker endpoint calls: callgrind dumps its counters (``MARKER``)."""
    binascii.crc_hqx(b"", 0)


# -- the load: exactly N requests over C keep-alive connections --------------------------------


async def _client(port: int, request: bytes, count: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if not head.startswith(b"HTTP/1.1 200 ") or length is None:
                raise RuntimeError(f"unexpected response: {head!r}")
            await reader.readexactly(int(length.group(1)))
    finally:
        writer.close()
        await writer.wait_closed()


def load(port: int, path: str, requests: int, clients: int) -> None:
    """Send ``requests`` GETs, spread over ``clients`` concurrent keep-alive connections."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Session-Id: {SESSION_ID}\r\n\r\n"
    ).encode()
    each, extra = divmod(requests, clients)

    async def all_clients() -> None:
        counts = [each + (i < extra) for i in range(clients)]
        await asyncio.gather(*(_client(port, request, n) for n in counts if n))

    asyncio.run(all_clients())


# -- callgrind's dumps ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Dump:
    """What a process did between two dumps: instructions, GC-tracked allocations (calls to
    ``GC_LINK``) and instructions inside the cyclic collector (``GC_COLLECT``)."""

    instructions: float
    allocations: float
    collector: float

    def minus(self, other: Dump, times: float = 1.0) -> Dump:
        return Dump(
            self.instructions - times * other.instructions,
            self.allocations - times * other.allocations,
            self.collector - times * other.collector,
        )

    def over(self, n: float) -> Dump:
        return Dump(self.instructions / n, self.allocations / n, self.collector / n)


def parse(text: str) -> Dump:
    """One callgrind output file's total, and the calls into (and cost of) the GC functions.

    Names are compressed (``(12) name`` once, then ``(12)``); a ``calls=`` line follows the
    callee's ``cfn=`` and is followed by a line whose last number is the call's inclusive cost
    (the only event counted is ``Ir``)."""
    if "\nevents: Ir\n" not in text:
        raise RuntimeError("not a callgrind dump of instructions alone (events: Ir)")
    names: dict[str, str] = {}
    calls: dict[str, int] = defaultdict(int)
    inclusive: dict[str, int] = defaultdict(int)
    total = 0
    callee = ""
    lines = iter(text.splitlines())
    for line in lines:
        if line.startswith(("fn=", "cfn=")):
            found = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
            if found is None:
                raise RuntimeError(f"a function name callgrind did not compress: {line!r}")
            key, name = found.groups()
            if name is not None:
                names[key] = name
            if line.startswith("cfn="):
                callee = names[key]
        elif line.startswith("calls="):
            if callee in (GC_LINK, GC_COLLECT):
                calls[callee] += int(line.split("=", 1)[1].split()[0])
                inclusive[callee] += int(next(lines).split()[-1])
        elif line.startswith(("summary:", "totals:")):
            total = int(line.split()[1])
    return Dump(total, calls[GC_LINK], inclusive[GC_COLLECT])


class Counted:
    """A server process under callgrind, dumping its counters whenever a request asks it to."""

    def __init__(self, port: int, marker: str, out: Path) -> None:
        self.port, self.marker, self.out, self.dumps = port, marker, out, 0
        self.last = time.monotonic()

    def dump(self) -> tuple[Dump, float]:
        """What the serving process did since the previous dump, and the seconds that took."""
        load(self.port, self.marker, 1, 1)
        now, self.dumps = time.monotonic(), self.dumps + 1
        elapsed, self.last = now - self.last, now
        # Only the process that served the request dumps: uvicorn, or gunicorn's one worker.
        found = list(self.out.parent.glob(f"{self.out.name}.*.{self.dumps}"))
        if len(found) != 1:
            raise RuntimeError(
                f"callgrind wrote {len(found)} dumps at {MARKER}, not 1: this Python's symbols "
                "are not readable (a stripped build?); pyenv's builds have them"
            )
        return parse(found[0].read_text()), elapsed


@contextmanager
def counted(suite: Suite, app: str, django: str, package: Path | None = None) -> Iterator[Counted]:
    """The server under callgrind, importing session-mw from ``package``'s folder if given
    (benchmarks.ablation's copies), else the installed one."""
    port = free_port()
    args = server_args(suite.server, app, port)
    env = {**os.environ, "PYTHONHASHSEED": "0", "SESSION_MW_BENCH_DJANGO": django}
    if package is not None:
        env["PYTHONPATH"] = str(package)
    # A worker that outlives its master's stop writes its last dump late: never an error.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:
        out = Path(folder) / "callgrind.out"
        # callgrind_control cannot reach a forked process (gunicorn's worker): the apps' marker
        # endpoint calls a C function nothing else on the request path calls, and callgrind
        # dumps each time it is entered.
        prefix = ["valgrind", "--tool=callgrind", f"--dump-before={MARKER}",
                  f"--callgrind-out-file={out}.%p"]  # fmt: skip
        with running(args, port, timeout=300, env=env, prefix=prefix):
            yield Counted(port, suite.marker, out)


@dataclass(frozen=True)
class Row:
    """Medians over a variant's windows, per request; and the most one window spent collecting."""

    instructions: float
    allocations: float
    collector: float
    collector_max: float


def measure(
    suite: Suite,
    name: str,
    requests: int,
    clients: int,
    windows: int,
    *,
    package: Path | None = None,
) -> dict[int, Row]:
    """One variant's rows, with one client and with ``clients`` at a time (``package``: see
    :func:`counted`)."""
    app, django = suite.variants[name]
    rows: dict[int, Row] = {}
    with counted(suite, app, django, package) as server:
        for c in (1, clients):  # warm-up: imports, caches, the first connections' set-up
            load(server.port, suite.path, 200, c)
        server.dump()
        # Every window holds one marker request (the end of one, the start of the next) and
        # what the server does while idle (its timers) for as long as the window lasts: the
        # marker alone, between dumps with nothing else between them, then an idle window.
        markers = sorted((server.dump()[0] for _ in range(3)), key=lambda d: d.instructions)
        marker = markers[1]
        time.sleep(IDLE_SECONDS)
        idle, seconds = server.dump()
        per_second = idle.minus(marker).over(seconds)
        for c in (1, clients):
            figures = []
            for _ in range(windows):
                load(server.port, suite.path, requests, c)
                window, seconds = server.dump()
                figures.append(window.minus(marker).minus(per_second, seconds).over(requests))
            rows[c] = Row(
                median(f.instructions for f in figures),
                median(f.allocations for f in figures),
                median(f.collector for f in figures),
                max(f.collector for f in figures),
            )
    return rows


def heading(title: str, heads: list[str]) -> list[str]:
    """A Markdown table's first lines: its title, and ``heads`` (the first column left-aligned,
    the figures right-aligned)."""
    return [title, "", "| " + " | ".join(heads) + " |", "|---" + "|---:" * (len(heads) - 1) + "|"]


def table(suite: Suite, rows: Mapping[str, Mapping[int, Row]], clients: int) -> str:
    """A Markdown table: every variant with one client, then with ``clients``."""
    bare = next(iter(rows))
    heads = ["variant", "clients", "instructions", "overhead", *(f"vs {p}" for p in suite.peers),
             "GC allocations", "in the collector (most)"]  # fmt: skip
    lines = heading(f"**{suite.title}** (per request, counted inside the server)", heads)
    for c in (1, clients):
        over = {name: by[c].instructions - rows[bare][c].instructions for name, by in rows.items()}
        for name, by in rows.items():
            cells = [name, str(c), f"{by[c].instructions:,.0f}"]
            cells.append("-" if name == bare else f"{over[name]:+,.0f}")
            for peer in suite.peers:
                cells.append("-" if name == bare else f"{over[name] / over[peer]:.2f}x")
            cells += [
                f"{by[c].allocations:.1f}",
                f"{by[c].collector:,.0f} ({by[c].collector_max:,.0f})",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    # [] among the choices: argparse checks an empty nargs="*" list against them too.
    parser.add_argument("suites", nargs="*", choices=[*SUITES, []], help=", ".join(SUITES))
    parser.add_argument("--requests", type=int, default=1000, help="per window")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--windows", type=int, default=3, help="per variant and clients")
    args = parser.parse_args()
    for key in args.suites or list(SUITES):
        suite = SUITES[key]
        rows = {
            name: measure(suite, name, args.requests, args.clients, args.windows)
            for name in suite.variants
        }
        print(table(suite, rows, args.clients), flush=True)
    print(
        f"(callgrind inside the server; medians over {args.windows} windows of {args.requests} "
        f"requests after 400 warm-up requests, each less one marker request and the server's "
        f"idle work for its length ({IDLE_SECONDS:.0f} s measured); Python "
        f"{sys.version.split()[0]})"
    )


if __name__ == "__main__":
    main()
