"""The session cookie: the id read from the request's ``Cookie`` header, and the ``Set-Cookie``
value that carries it back, for browser pages that have no script to copy a header.

>>> cookie = SessionCookie("sid", {"max_age": 3600})
>>> cookie.read("theme=dark; sid=chat-42")
'chat-42'
>>> cookie.set_cookie("chat-42", https=True)
'sid=chat-42; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax; Secure'
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypedDict

__all__ = ["CookieOptions", "SessionCookie"]

# RFC 6265 cookie-name (a token) and cookie-octets: what may stand in a Cookie header unquoted.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OCTETS = re.compile(r"[!#-+\--:<-\[\]-~]+")
_DOMAIN = re.compile(r"\.?[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?")
_PATH = re.compile(r"/[!-:<-~]*")  # no control characters, spaces or ';'


class CookieOptions(TypedDict, total=False):
    """The attributes of the session cookie; every key is optional.

    ``max_age`` (seconds; unset: the cookie ends with the browser session), ``domain`` (unset:
    this host only), ``path`` (``"/"``), ``samesite`` (``"Lax"``), ``secure`` (unset: on https
    requests only) and ``httponly`` (``True``: page scripts cannot read it).
    """

    max_age: int | None
    domain: str | None
    path: str
    samesite: Literal["Strict", "Lax", "None"]
    secure: bool | None
    httponly: bool


class SessionCookie:
    """Reads the session id from one cookie and renders the ``Set-Cookie`` value that sets it."""

    __slots__ = ("_always_secure", "_attributes", "_options", "_prefix", "name")

    def __init__(self, name: str, options: CookieOptions | None = None) -> None:
        options = options or {}
        unknown = set(options) - set(CookieOptions.__annotations__)
        if unknown:
            raise ValueError(
                f"cookie_options has unknown keys {sorted(unknown)}: use "
                f"{', '.join(CookieOptions.__annotations__)}"
            )
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(
                f"cookie_name={name!r} is not a valid cookie name: use a non-empty token of "
                "letters, digits and !#$%&'*+-.^_`|~, such as 'session_id'"
            )
        self.name = name
        self._options = options
        self._prefix = name + "="
        self._attributes = _attributes(options)
        secure = options.get("secure")
        if secure not in (True, False, None):
            raise ValueError(f"cookie_options secure={secure!r}: use True, False or None (https)")
        if secure is None and options.get("samesite") == "None":
            secure = True  # browsers drop SameSite=None cookies that are not Secure
        self._always_secure = secure

    def read(self, header: str) -> str | None:
        """The value of this cookie in a ``Cookie`` request header, unquoted, or ``None``."""
        for part in header.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name == self.name:
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                return value
        return None

    def set_cookie(self, session_id: str, *, https: bool) -> str | None:
        """The ``Set-Cookie`` value for ``session_id``; ``None`` when it cannot be a cookie value
        (an id that a custom validator allowed, with characters a cookie cannot hold)."""
        if not self.can_hold(session_id):
            return None
        secure = "; Secure" if self._secure(https) else ""
        return f"{self._prefix}{session_id}{self._attributes}{secure}"

    def attributes(self, *, https: bool) -> dict[str, Any]:
        """The cookie's attributes as keyword arguments, for frameworks that render it themselves
        (Django's ``response.set_cookie``)."""
        options = self._options
        return {
            "max_age": options.get("max_age"),
            "domain": options.get("domain"),
            "path": options.get("path", "/"),
            "samesite": options.get("samesite", "Lax"),
            "secure": self._secure(https),
            "httponly": options.get("httponly", True),
        }

    def can_hold(self, session_id: str) -> bool:
        """Whether ``session_id`` can be this cookie's value as it is."""
        return _OCTETS.fullmatch(session_id) is not None

    def _secure(self, https: bool) -> bool:
        return https if self._always_secure is None else self._always_secure

    def is_ours(self, set_cookie: str) -> bool:
        """Whether a ``Set-Cookie`` value of the app's sets this cookie (then it stands)."""
        return set_cookie.lstrip().startswith(self._prefix)


def _attributes(options: CookieOptions) -> str:
    path = _matching(options.get("path", "/"), _PATH, "path", "a URL path such as '/' or '/chat'")
    parts = [f"Path={path}"]
    domain = options.get("domain")
    if domain is not None:
        domain = _matching(domain, _DOMAIN, "domain", "a host name such as 'a.com'")
        parts.append(f"Domain={domain}")
    max_age = options.get("max_age")
    if max_age is not None:
        if type(max_age) is not int or max_age < 0:
            raise ValueError(f"cookie_options max_age={max_age!r}: use whole seconds, >= 0")
        parts.append(f"Max-Age={max_age}")
    if options.get("httponly", True):
        parts.append("HttpOnly")
    samesite = options.get("samesite", "Lax")
    if samesite not in ("Strict", "Lax", "None"):
        raise ValueError(f"cookie_options samesite={samesite!r}: use 'Strict', 'Lax' or 'None'")
    parts.append(f"SameSite={samesite}")
    return "".join(f"; {part}" for part in parts)


def _matching(value: object, pattern: re.Pattern[str], key: str, advice: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"cookie_options {key}={value!r}: use {advice}")
    return value
