"""The Django project the server benchmark serves under gunicorn (``wsgi``) and uvicorn (``asgi``).

One endpoint, ``/chat/<cid>``: a synchronous view under WSGI, an asynchronous one under ASGI (what
an LLM backend on Django's ASGI handler writes, and no thread hop for either). The middleware is
chosen by the ``SESSION_MW_BENCH_DJANGO`` environment variable, one of ``MIDDLEWARE``'s keys, as
Django reads its settings once per process.
"""

from __future__ import annotations

import os

import django
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path

from benchmarks.server_instructions import mark

MIDDLEWARE = {
    "bare": [],
    "session-mw": ["session_mw.django.SessionMiddleware"],
    "django-guid": ["django_guid.middleware.guid_middleware"],
}

VARIANT = os.environ.get("SESSION_MW_BENCH_DJANGO", "bare")
settings.configure(
    ROOT_URLCONF=__name__,
    MIDDLEWARE=MIDDLEWARE[VARIANT],
    # django-guid's app hooks every request's end: installed where it is measured, only.
    INSTALLED_APPS=["django_guid"] if VARIANT == "django-guid" else [],
    DJANGO_GUID={"GUID_HEADER_NAME": "X-Session-Id", "VALIDATE_GUID": False},
    ALLOWED_HOSTS=["*"],
    USE_TZ=True,
    SECRET_KEY="benchmark",
)
django.setup()


def _reply() -> JsonResponse:
    response = JsonResponse({"reply": "ok"})
    response["Content-Length"] = str(len(response.content))  # not chunked, under either server
    return response


def chat(request: HttpRequest, cid: str) -> JsonResponse:
    return _reply()


async def achat(request: HttpRequest, cid: str) -> JsonResponse:
    return _reply()


def dump(request: HttpRequest) -> JsonResponse:
    mark()  # callgrind dumps its counters
    return _reply()


async def adump(request: HttpRequest) -> JsonResponse:
    return dump(request)


from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

urlpatterns = [
    path("chat/<cid>", chat),
    path("achat/<cid>", achat),
    path("dump", dump),  # after the routes measured
    path("adump", adump),
]
wsgi = get_wsgi_application()
asgi = get_asgi_application()
