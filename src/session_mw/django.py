"""The Django adapter: ``"session_mw.django.SessionMiddleware"`` in ``settings.MIDDLEWARE``.

Synchronous under WSGI and natively asynchronous under ASGI (no thread hop of its own), configured
from ``SESSION_MW_<OPTION>`` settings, read when Django instantiates the middleware.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBadRequest
from django.http.response import HttpResponseBase
from django.urls import Resolver404, resolve
from django.utils.module_loading import import_string

from session_mw.headers import HeaderNames
from session_mw.ids import DEFAULTS, IdPolicy, Rejected
from session_mw.scope import Session, close_session, open_session
from session_mw.wsgi import other_sources

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

__all__ = ["SessionMiddleware", "policy_from_settings"]

# Settings that may name a callable by its dotted path, as Django's own settings do.
_CALLABLES = frozenset({"generator", "validator", "user_id"})
_EXPOSE = "Access-Control-Expose-Headers"

GetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def policy_from_settings() -> IdPolicy:
    """The id policy the ``SESSION_MW_<OPTION>`` settings describe (defaults where unset).

    Raises ``ImproperlyConfigured`` naming the setting and what to change.
    """
    options: dict[str, Any] = {}
    for option, default in DEFAULTS.items():
        setting = f"SESSION_MW_{option.upper()}"
        value = getattr(settings, setting, default)
        if option in _CALLABLES and isinstance(value, str):
            try:
                value = import_string(value)
            except ImportError as error:
                raise ImproperlyConfigured(
                    f"{setting} = {value!r} cannot be imported ({error}): give a callable, or "
                    "the dotted path of one"
                ) from None
        options[option] = value
    try:
        return IdPolicy(**options)
    except ValueError as error:
        # Every message starts with the option's name: name its setting instead.
        named = re.match(r"\w+", str(error))
        setting = named[0].upper() if named and named[0] in DEFAULTS else "<OPTION>"
        raise ImproperlyConfigured(f"SESSION_MW_{setting}: {error}") from None


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
        self._policy = policy = policy_from_settings()
        self._names = HeaderNames.as_str(policy.header_name)
        self._meta_key = "HTTP_" + policy.header_name.upper().replace("-", "_")
        self._sources = policy.sources()
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
        opened = open_session(started, mark_span=True, baggage=self._policy.baggage)
        try:
            response: HttpResponseBase = self.get_response(request)  # type: ignore[assignment]
        finally:
            close_session(opened)
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
        opened = open_session(started, mark_span=True, baggage=self._policy.baggage)
        try:
            response = await get_response(request)
        finally:
            close_session(opened)
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
        policy = self._policy
        meta = request.META
        incoming = meta.get(self._meta_key)
        where: str | None = None  # None: the id came from the header, if from anywhere
        matched = None
        if self._sources:  # a path parameter, a cookie or baggage: only projects that use them pay
            incoming, where, matched = other_sources(
                policy, meta, incoming, lambda: _resolve(request)
            )
        try:
            session_id = policy.choose(incoming, where)
        except Rejected:
            return HttpResponseBadRequest(
                policy.rejection(where), content_type="text/plain; charset=utf-8"
            )
        if session_id is None:
            return None
        attributes = policy.attributes(request, request.path, request.method or "GET")
        if matched is not None and matched[0] is not None:
            attributes["http.route"] = matched[0]
        # Django resolves the URL once the middleware has called on: the route is read late.
        return Session(session_id, attributes, None if matched else lambda: _route(request))

    def _finish(
        self, request: HttpRequest, response: HttpResponseBase, opened: Session | None
    ) -> HttpResponseBase:
        policy = self._policy
        headers = response.headers
        name = policy.header_name
        if opened is not None and policy.issue_ids and name not in headers:
            headers[name] = opened.id  # the app's own header, when it wrote one, stands
        if "HTTP_ORIGIN" in request.META:
            headers[_EXPOSE] = self._names.exposed(headers.get(_EXPOSE, ""))
        cookie = policy.cookie
        sent = headers.get(name)
        if (
            cookie is not None
            and sent is not None
            and cookie.name not in response.cookies  # the app's own cookie stands
            and cookie.can_hold(sent)
        ):
            response.set_cookie(cookie.name, sent, **cookie.attributes(https=request.is_secure()))
        return response


def _route(request: HttpRequest) -> dict[str, AttributeValue] | None:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return None  # not resolved yet (or not found): ask again later
    return {"http.route": "/" + match.route}


def _resolve(request: HttpRequest) -> tuple[str | None, dict[str, Any]]:
    """The route and keyword arguments the request's URL resolves to, before Django resolves it."""
    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return None, {}
    return "/" + match.route, match.kwargs


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
