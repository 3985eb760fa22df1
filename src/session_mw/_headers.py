"""Response headers: the session id out, and its exposure to browser scripts.

Shared by the ASGI adapter (``bytes`` header lists) and the WSGI adapter (``str`` header lists). It
works on the raw list, never on a dict, so repeated headers such as ``Set-Cookie`` survive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, AnyStr, Generic

from session_mw._cookies import SessionCookie

__all__ = ["HeaderNames"]


class HeaderNames(Generic[AnyStr]):
    """What one adapter writes into responses, encoded once in the adapter's string type."""

    __slots__ = (
        "_decode",
        "_encode",
        "_secure",
        "comma",
        "cookie",
        "display",
        "expose",
        "key",
        "set_cookie",
    )

    def __init__(  # noqa: PLR0917
        self,
        key: AnyStr,
        display: AnyStr,
        expose: AnyStr,
        comma: AnyStr,
        set_cookie: AnyStr,
        cookie: SessionCookie | None,
        decode: Callable[[AnyStr], str],
        encode: Callable[[str], AnyStr],
        secure: Callable[[Any], bool],
    ) -> None:
        self.key: AnyStr = key  # lower-case: what response header names are compared against
        self.display: AnyStr = display  # as configured: what goes in Access-Control-Expose-Headers
        self.expose: AnyStr = expose
        self.comma: AnyStr = comma
        self.set_cookie: AnyStr = set_cookie
        self.cookie = cookie
        self._decode: Callable[[AnyStr], str] = decode
        self._encode: Callable[[str], AnyStr] = encode
        # Whether a request (an ASGI scope, a WSGI environ) came over https: asked only when a
        # cookie is set, so requests of apps without one do not pay for the question.
        self._secure = secure

    @staticmethod
    def as_bytes(header_name: str, cookie: SessionCookie | None = None) -> HeaderNames[bytes]:
        return HeaderNames(
            header_name.lower().encode("ascii"),
            header_name.encode("ascii"),
            b"access-control-expose-headers",
            b",",
            b"set-cookie",
            cookie,
            _latin1,
            str.encode,
            _scope_is_secure,
        )

    @staticmethod
    def as_str(header_name: str, cookie: SessionCookie | None = None) -> HeaderNames[str]:
        return HeaderNames(
            header_name.lower(),
            header_name,
            "access-control-expose-headers",
            ",",
            "set-cookie",
            cookie,
            str,
            str,
            _environ_is_secure,
        )

    def response_headers(
        self,
        headers: Iterable[tuple[AnyStr, AnyStr]],
        session_id: AnyStr | None,
        cors: bool,
        request: Any = None,
    ) -> list[tuple[AnyStr, AnyStr]]:
        """``headers`` with the session header and, when ``cors``, its name exposed.

        ``session_id`` is added unless the app wrote the header itself, or it is ``None``. With a
        session cookie, the id the header carries also goes into it (``Secure`` when ``request``,
        the ASGI scope or WSGI environ, came over https).
        """
        key = self.key
        if not cors and self.cookie is None:
            # Most responses: nothing to expose, no cookie. A copy and one look for the app's
            # own header, not a rebuild pair by pair: 2,500 instructions less per request.
            copied = list(headers)
            if session_id is not None:
                for name, _ in copied:
                    if name.lower() == key:
                        return copied  # the app wrote the header: see below
                copied.append((key, session_id))
            return copied
        expose = self.expose
        out: list[tuple[AnyStr, AnyStr]] = []
        written = False
        exposed = not cors
        for name, value in headers:
            lowered = name.lower()
            if lowered == key:
                # The app issued or rotated the id itself (an MCP server's Mcp-Session-Id, a
                # "new conversation" endpoint): its value stands, and ours would be a second one.
                written = True
            elif lowered == expose and not exposed:
                exposed = True
                out.append((name, self.exposed(value)))
                continue
            out.append((name, value))
        if session_id is not None and not written:
            out.append((key, session_id))
        if not exposed:
            out.append((expose, self.display))
        if self.cookie is not None:
            self._add_cookie(out, self.cookie, request is not None and self._secure(request))
        return out

    def _add_cookie(
        self, out: list[tuple[AnyStr, AnyStr]], cookie: SessionCookie, https: bool
    ) -> None:
        # Appended, so every other Set-Cookie survives; the app's own session cookie stands.
        ids = []
        for name, value in out:
            lowered = name.lower()
            if lowered == self.key:
                ids.append(value)
            elif lowered == self.set_cookie and cookie.is_ours(self._decode(value)):
                return
        if len(ids) == 1:  # the one id the response carries, ours or the app's
            rendered = cookie.set_cookie(self._decode(ids[0]), https=https)
            if rendered is not None:
                out.append((self.set_cookie, self._encode(rendered)))

    def exposed(self, value: AnyStr) -> AnyStr:
        """An ``Access-Control-Expose-Headers`` value that lists the session header."""
        # Appended, never replaced: CORSMiddleware or the app may expose other headers already.
        if self.key in [part.strip().lower() for part in value.split(self.comma)]:
            return value
        if not value.strip():
            return self.display
        return value + self.comma + self.display


def _latin1(value: bytes) -> str:
    return value.decode("latin-1")


def _scope_is_secure(scope: Any) -> bool:
    return scope.get("scheme") in {"https", "wss"}


def _environ_is_secure(environ: Any) -> bool:
    return bool(environ.get("wsgi.url_scheme") == "https")
