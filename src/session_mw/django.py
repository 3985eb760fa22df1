"""The Django adapter: ``"session_mw.django.SessionMiddleware"`` in ``settings.MIDDLEWARE``.

Synchronous under WSGI and natively asynchronous under ASGI (no thread hop of its own), configured
from ``SESSION_MW_<OPTION>`` settings, read when Django instantiates the middleware.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBadRequest
from django.http.response import HttpResponseBase
from django.urls import Resolver404, resolve

from session_mw._headers import HeaderNames
from session_mw._options import PREFIX, OptionError, Options, document, from_config
from session_mw._pipeline import Pipeline, Rejected
from session_mw._scope import Session, close_session, open_session

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

__all__ = ["SessionMiddleware", "options_from_settings"]

_EXPOSE = "Access-Control-Expose-Headers"

GetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def options_from_settings() -> Options:
    """The options the ``SESSION_MW_<OPTION>`` settings give (defaults where unset).

    Raises ``ImproperlyConfigured`` naming the setting and what to change.
    """
    ours = {key: getattr(settings, key) for key in dir(settings) if key.startswith(PREFIX)}
    try:
        return from_config(ours, ours)
    except OptionError as error:
        raise ImproperlyConfigured(str(error)) from None


@document(config=True)
class SessionMiddleware:
    """Opens a session for every request to a Django project.

    Put it first in ``MIDDLEWARE`` (after Django's own ``AuthenticationMiddleware`` when
    ``SESSION_MW_USER_ID`` reads ``request.user``)::

        MIDDLEWARE = ["session_mw.django.SessionMiddleware", ...]

    The session is current from before the view runs until the response is returned, and while a
    ``StreamingHttpResponse`` body is produced, chunk by chunk, to its last one.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        self._pipeline: Pipeline[HttpRequest] = Pipeline(options_from_settings(), _RequestIO())
        pipeline = self._pipeline
        self._names = HeaderNames.as_str(pipeline.header_name)
        self._meta_key = "HTTP_" + pipeline.header_name.upper().replace("-", "_")
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)  # Django then calls it without a thread hop

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self._call_async(request)
        started = self._start(request)
        if isinstance(started, HttpResponseBase):
            return started
        if started is None:  # issue_ids=False and no usable id: no session, as without us
            return self._finish(request, self.get_response(request), None)  # type: ignore[arg-type]
        entered = open_session(started, True, self._pipeline.baggage, self._pipeline.id_attributes)
        try:
            response: HttpResponseBase = self.get_response(request)  # type: ignore[assignment]
        finally:
            close_session(entered)
        if response.streaming:
            response.streaming_content = _in_session(started, response.streaming_content)  # type: ignore[attr-defined]
        return self._finish(request, response, started)

    async def _call_async(self, request: HttpRequest) -> HttpResponseBase:
        get_response: AsyncGetResponse = self.get_response  # type: ignore[assignment]
        started = self._start(request)
        if isinstance(started, HttpResponseBase):
            return started
        if started is None:
            return self._finish(request, await get_response(request), None)
        entered = open_session(started, True, self._pipeline.baggage, self._pipeline.id_attributes)
        try:
            response = await get_response(request)
        finally:
            close_session(entered)
        if response.streaming:
            content = response.streaming_content  # type: ignore[attr-defined]
            response.streaming_content = (  # type: ignore[attr-defined]
                _in_session_async(started, content)
                if hasattr(content, "__aiter__")
                else _in_session(started, content)
            )
        return self._finish(request, response, started)

    def _start(self, request: HttpRequest) -> Session | HttpResponseBase | None:
        """The request's session, the 400 that rejects it, or ``None`` for no session."""
        try:
            return self._pipeline.begin(
                request, request.META.get(self._meta_key), request.path, request.method or "GET"
            )
        except Rejected as rejected:
            return HttpResponseBadRequest(rejected.body, content_type="text/plain; charset=utf-8")

    def _finish(
        self, request: HttpRequest, response: HttpResponseBase, opened: Session | None
    ) -> HttpResponseBase:
        pipeline = self._pipeline
        headers = response.headers
        name = pipeline.header_name
        if opened is not None and pipeline.issue_ids and name not in headers:
            headers[name] = opened.id  # the app's own header, when it wrote one, stands
        if "HTTP_ORIGIN" in request.META:
            headers[_EXPOSE] = self._names.exposed(headers.get(_EXPOSE, ""))
        cookie = pipeline.cookie
        sent = headers.get(name)
        if (
            cookie is not None
            and sent is not None
            and cookie.name not in response.cookies  # the app's own cookie stands
            and cookie.can_hold(sent)
        ):
            response.set_cookie(cookie.name, sent, **cookie.attributes(https=request.is_secure()))
        return response


class _RequestIO:
    """Where Django's request keeps what the pipeline asks for."""

    __slots__ = ()

    def match(self, request: HttpRequest) -> tuple[str | None, dict[str, Any]]:
        # Before Django resolves the URL itself (it does once the middleware has called on).
        try:
            match = resolve(request.path_info, getattr(request, "urlconf", None))
        except Resolver404:
            return None, {}
        return "/" + match.route, match.kwargs

    def cookie_header(self, request: HttpRequest) -> str | None:
        return request.META.get("HTTP_COOKIE")

    def baggage_header(self, request: HttpRequest) -> str | None:
        return request.META.get("HTTP_BAGGAGE")

    def late_route(self, request: HttpRequest) -> dict[str, AttributeValue] | None:
        match = getattr(request, "resolver_match", None)
        if match is None:
            return None  # not resolved yet (or not found): ask again later
        return {"http.route": "/" + match.route}


def _in_session(opened: Session, chunks: Iterable[Any]) -> Iterator[Any]:
    # Each chunk is produced inside the session, which is closed again before the server gets
    # it: a generator shares its caller's context, so the session must not stay set across yield.
    iterator = iter(chunks)
    while True:
        token = open_session(opened)
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        finally:
            close_session(token)
        yield chunk


async def _in_session_async(opened: Session, chunks: AsyncIterable[Any]) -> AsyncIterator[Any]:
    iterator = aiter(chunks)
    while True:
        token = open_session(opened)
        try:
            chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        finally:
            close_session(token)
        yield chunk
