"""Response headers: the session id out, and its exposure to browser scripts.

Shared by the ASGI adapter (``bytes`` header lists) and the WSGI adapter (``str`` header lists). It
works on the raw list, never on a dict, so repeated headers such as ``Set-Cookie`` survive.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import AnyStr, Generic

__all__ = ["HeaderNames"]


class HeaderNames(Generic[AnyStr]):
    """What one adapter writes into responses, encoded once in the adapter's string type."""

    __slots__ = ("comma", "display", "expose", "key")

    def __init__(self, key: AnyStr, display: AnyStr, expose: AnyStr, comma: AnyStr) -> None:
        self.key: AnyStr = key  # lower-case: what response header names are compared against
        self.display: AnyStr = display  # as configured: what goes in Access-Control-Expose-Headers
        self.expose: AnyStr = expose
        self.comma: AnyStr = comma

    @staticmethod
    def as_bytes(header_name: str) -> HeaderNames[bytes]:
        return HeaderNames(
            header_name.lower().encode("ascii"),
            header_name.encode("ascii"),
            b"access-control-expose-headers",
            b",",
        )

    @staticmethod
    def as_str(header_name: str) -> HeaderNames[str]:
        return HeaderNames(header_name.lower(), header_name, "access-control-expose-headers", ",")

    def response_headers(
        self, headers: Iterable[tuple[AnyStr, AnyStr]], session_id: AnyStr | None, cors: bool
    ) -> list[tuple[AnyStr, AnyStr]]:
        """``headers`` with the session header and, when ``cors``, its name exposed.

        ``session_id`` is added unless the app wrote the header itself, or it is ``None``.
        """
        key, expose = self.key, self.expose
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
                out.append((name, self._exposed(value)))
                continue
            out.append((name, value))
        if session_id is not None and not written:
            out.append((key, session_id))
        if not exposed:
            out.append((expose, self.display))
        return out

    def _exposed(self, value: AnyStr) -> AnyStr:
        # Appended, never replaced: CORSMiddleware or the app may expose other headers already.
        if self.key in [part.strip().lower() for part in value.split(self.comma)]:
            return value
        if not value.strip():
            return self.display
        return value + self.comma + self.display
