"""The routes of the cross-adapter harness (tests/adapters.py), for the Django adapter: the
harness makes this module ``ROOT_URLCONF``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from tests.adapters import seen


def endpoint(request: HttpRequest, **params: object) -> HttpResponse:
    query = request.GET
    response = HttpResponse(seen(), content_type="text/plain; charset=utf-8")
    response.set_cookie("theme", "dark")
    if "own_cookie" in query:
        response.set_cookie("sid", query["own_cookie"])
    if "own_id" in query:
        response["x-session-id"] = query["own_id"]
    if "expose" in query:
        response["Access-Control-Expose-Headers"] = query["expose"]
    return response


urlpatterns = [
    path("threads/<str:thread_id>/", endpoint),
    path("plain/", endpoint),
    path("api/", include([path("v1/threads/<str:thread_id>/", endpoint)])),
    path("n/<int:n>/", endpoint),
]
