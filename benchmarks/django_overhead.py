"""Per-request overhead of session-mw's Django middleware against its peers, in one run.

    python -m benchmarks.django_overhead [--rounds 21] [--requests 2000]

Each request is a fresh ``WSGIRequest`` handed to the middleware, whose ``get_response`` returns a
new ``HttpResponse``: what Django's handler does around a view, minus URL resolution and the view,
so the figures are the middleware's own cost (synchronous, as under WSGI). Peers: django-guid's
``guid_middleware`` (header ``X-Session-Id``, GUID validation off) and a hand-written Django
middleware around OpenInference's ``using_session``.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable
from typing import Any

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["django_guid"],
    DJANGO_GUID={"GUID_HEADER_NAME": "X-Session-Id", "VALIDATE_GUID": False},
    ALLOWED_HOSTS=["*"],
    USE_TZ=True,
)
django.setup()

from django.core.handlers.wsgi import WSGIRequest  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django_guid.middleware import guid_middleware  # noqa: E402
from openinference.instrumentation import using_session  # noqa: E402

from benchmarks.harness import SESSION_ID, Suites, main  # noqa: E402
from session_mw.django import SessionMiddleware  # noqa: E402

GetResponse = Callable[[HttpRequest], HttpResponse]


def view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok", content_type="text/plain")


def using_session_middleware(get_response: GetResponse) -> GetResponse:
    """What a team writes by hand today: a Django middleware around using_session."""

    def middleware(request: HttpRequest) -> HttpResponse:
        sid = request.headers.get("X-Session-Id") or str(uuid.uuid4())
        with using_session(sid):
            response = get_response(request)
        response["X-Session-Id"] = sid
        return response

    return middleware


def handlers() -> dict[str, GetResponse]:
    return {
        "bare view": view,
        "session-mw": SessionMiddleware(view),
        "django-guid": guid_middleware(view),
        "using_session (hand-written)": using_session_middleware(view),
    }


def runner(handler: GetResponse, environ: dict[str, Any]) -> Callable[[int], float]:
    def many(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            # A fresh request, as Django's handler makes: the middlewares cache on it.
            handler(WSGIRequest({**environ, "wsgi.input": io.BytesIO()}))
        return time.perf_counter() - start

    return many


def suites() -> Suites:
    """Every table: its variants, its baseline and the peer its ratios are taken against."""
    common = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/chat",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ACCEPT": "*/*",
        "HTTP_USER_AGENT": "python-httpx/0.28.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": "0",
        "wsgi.url_scheme": "http",
    }
    cases = {
        "with an incoming X-Session-Id header": {**common, "HTTP_X_SESSION_ID": SESSION_ID},
        "without a header (an id is generated)": common,
    }
    return {
        title: (
            {name: runner(handler, environ) for name, handler in handlers().items()},
            "bare view",
            "django-guid",
        )
        for title, environ in cases.items()
    }


if __name__ == "__main__":
    main((__doc__ or "").splitlines()[0], suites)
