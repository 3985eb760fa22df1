"""Ready-made hooks so that every outgoing call made inside a session carries its header.

httpx (sync and async clients) through its event hooks, requests through a transport adapter;
other clients call :func:`session_mw.inject_headers` themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

from session_mw.propagation import inject_headers

if TYPE_CHECKING:
    import requests

__all__ = ["httpx_async_event_hooks", "httpx_event_hooks", "requests_session"]


class _HasHeaders(Protocol):
    headers: MutableMapping[str, str]


def httpx_event_hooks(
    *, header_name: str = "X-Session-Id"
) -> dict[str, list[Callable[[_HasHeaders], None]]]:
    """Event hooks for ``httpx.Client``.

    ::

        client = httpx.Client(event_hooks=httpx_event_hooks())
    """

    def add_session_header(request: _HasHeaders) -> None:
        inject_headers(request.headers, header_name=header_name)

    return {"request": [add_session_header]}


def httpx_async_event_hooks(
    *, header_name: str = "X-Session-Id"
) -> dict[str, list[Callable[[_HasHeaders], Awaitable[None]]]]:
    """Event hooks for ``httpx.AsyncClient``.

    ::

        client = httpx.AsyncClient(event_hooks=httpx_async_event_hooks())
    """

    async def add_session_header(request: _HasHeaders) -> None:
        inject_headers(request.headers, header_name=header_name)

    return {"request": [add_session_header]}


def requests_session(
    session: requests.Session | None = None, *, header_name: str = "X-Session-Id"
) -> requests.Session:
    """A ``requests.Session`` (a new one, or ``session``) whose every request carries the header.

    ::

        http = requests_session()
        http.get("http://backend.internal/answer")
    """
    # Imported here: users of httpx alone need not have requests installed.
    import requests  # noqa: PLC0415
    from requests.adapters import HTTPAdapter  # noqa: PLC0415

    class SessionHeaderAdapter(HTTPAdapter):
        def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
            inject_headers(request.headers, header_name=header_name)
            return super().send(request, *args, **kwargs)

    session = session or requests.Session()
    for prefix in ("http://", "https://"):
        session.mount(prefix, SessionHeaderAdapter())
    return session
