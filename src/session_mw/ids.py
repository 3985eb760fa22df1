"""The id policy: which incoming ids are used, and how new ones are made."""

from __future__ import annotations

import binascii
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypedDict

from opentelemetry.baggage import get_baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.util.types import AttributeValue

from session_mw.cookies import CookieOptions, SessionCookie
from session_mw.signing import Signer

__all__ = ["DEFAULTS", "ID_RULE", "IdPolicy", "Options", "Rejected", "generate_id", "is_valid_id"]

logger = logging.getLogger("session_mw")

_BAGGAGE = W3CBaggagePropagator()

ID_RULE = "1 to 128 characters from ASCII letters, digits and - _ . : @ + = /"

# Nothing outside this set can break a header, a log line, a CSV export or a URL path segment.
_VALID = re.compile(r"[A-Za-z0-9\-_.:@+=/]{1,128}")
# RFC 7230 token: what a header field name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

_BATCH = 256
_pool: list[str] = []
# A forked child (gunicorn and Celery prefork workers, multiprocessing) starts with a copy of its
# parent's pool: drawing from it would give two processes the same ids, two conversations one
# session. (Windows has no fork, and no register_at_fork.)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pool.clear)

# The 36-character form, one id per 37-byte line: where each of the 32 hex digits of an id goes
# (after the dashes), the version digit (a 4) and the variant digit (8, 9, a or b).
_LINE = 37
_COLUMNS = [
    digit + (digit >= 8) + (digit >= 12) + (digit >= 16) + (digit >= 20) for digit in range(32)
]
_VERSION, _VARIANT = _COLUMNS[12], _COLUMNS[16]  # 14 and 19
_TO_VARIANT = bytes.maketrans(b"0123456789abcdef", b"89ab" * 4)
_DASHES = b"-" * (_LINE * _BATCH)


def _uuid4_batch() -> list[str]:
    digits = binascii.hexlify(os.urandom(16 * _BATCH))
    lines = bytearray(_DASHES)
    # Column by column over the whole batch, in C: five slices and an f-string per id cost 7,600
    # instructions an id, these copies 1,700 (6,300 less per request that gets a new id).
    for digit, column in enumerate(_COLUMNS):
        lines[column::_LINE] = digits[digit::32]
    lines[_VERSION::_LINE] = b"4" * _BATCH
    lines[_VARIANT::_LINE] = digits[16::32].translate(_TO_VARIANT)
    lines[_LINE - 1 :: _LINE] = b"\n" * _BATCH
    return lines.decode("ascii").split()


def generate_id() -> str:
    """Return a new random id in ``str(uuid.uuid4())`` form.

    Same randomness source as :func:`uuid.uuid4` (``os.urandom``), but drawn 256 ids at a time:
    ``str(uuid.uuid4())`` costs more than this middleware's whole per-request budget.
    ``list.pop`` and ``list.extend`` are atomic, so threads never share an id.

    >>> import uuid
    >>> i = generate_id()
    >>> uuid.UUID(i).version, str(uuid.UUID(i)) == i
    (4, True)
    """
    try:
        return _pool.pop()
    except IndexError:
        _pool.extend(_uuid4_batch())
        return _pool.pop()


def is_valid_id(value: str) -> bool:
    """The default validator: ``value`` is 1 to 128 characters from ``A-Z a-z 0-9 - _ . : @ + = /``.

    >>> is_valid_id("chat-42"), is_valid_id("a,b"), is_valid_id("")
    (True, False, False)
    """
    return _VALID.fullmatch(value) is not None


OnInvalid = Literal["replace", "reject"]


class Options(TypedDict, total=False):
    """The keyword options every adapter takes; see :class:`IdPolicy` for what each one does."""

    header_name: str
    generator: Callable[[], str] | None
    validator: Callable[[str], bool] | None
    on_invalid: OnInvalid
    user_id: Callable[[Any], object] | None
    baggage: bool
    from_baggage: bool
    trust_incoming: bool
    issue_ids: bool
    secret: str | bytes | Sequence[str | bytes] | None
    path_param: str | None
    cookie_name: str | None
    cookie_options: CookieOptions | None


#: Every option with its default value (the Flask adapter fills ``app.config`` from these).
DEFAULTS: Options = {
    "header_name": "X-Session-Id",
    "generator": None,
    "validator": None,
    "on_invalid": "replace",
    "user_id": None,
    "baggage": False,
    "from_baggage": False,
    "trust_incoming": True,
    "issue_ids": True,
    "secret": None,
    "path_param": None,
    "cookie_name": None,
    "cookie_options": None,
}


class Rejected(Exception):
    """The request's id is invalid and ``on_invalid="reject"``: the adapter answers 400."""


class IdPolicy:
    """Picks the session id of one request from its header value.

    :param header_name: the request and response header carrying the id.
    :param generator: makes a new id; the default gives UUID4 strings.
    :param validator: decides whether an incoming value may be used as the id.
    :param on_invalid: ``"replace"`` gives the request a new id and logs a warning;
        ``"reject"`` makes the adapter answer 400.
    :param user_id: given the request (the ASGI scope or the WSGI environ), returns its user id
        or ``None``; it becomes ``user.id`` on spans and in the OTel context.
    :param baggage: also put ``session.id`` into W3C baggage, which OTel's propagator sends on
        every outgoing call, to every host: only for services that must get the session through
        OTel propagation alone.
    :param from_baggage: when the header is absent, take the id from an incoming ``baggage``
        ``session.id`` entry (validated like the header).
    :param trust_incoming: ``False`` ignores incoming ids and always makes a new one: for public
        endpoints whose clients must not choose their session.
    :param issue_ids: ``False`` never makes an id and never writes the response header: for apps
        that issue the id themselves (an MCP server's ``Mcp-Session-Id``). A request without a
        usable id then runs without a session.
    :param secret: sign generated ids (see :mod:`session_mw.signing`) and accept only incoming
        ids that carry a valid tag; a list of secrets, newest first, allows rotation.
    :param path_param: the route's path parameter that names the conversation
        (``/threads/{thread_id}``): on routes that have it, its value is the id, before the header.
    :param cookie_name: read the id from this cookie when the header is absent, and set the cookie
        on every response that carries the header (for pages without a script).
    :param cookie_options: the cookie's attributes (:class:`session_mw.cookies.CookieOptions`).

    Precedence: the path parameter, the header, the cookie, the baggage entry, a new id.

    A ``generator``, ``validator`` or ``user_id`` that raises is logged with its traceback and
    the request goes on: with a UUID4, as invalid, without a user id.
    """

    __slots__ = (
        "_generator",
        "_signer",
        "_validator",
        "baggage",
        "cookie",
        "from_baggage",
        "generate",
        "header_name",
        "issue_ids",
        "path_param",
        "reject",
        "rule",
        "trust_incoming",
        "user_id",
        "validate",
    )

    def __init__(
        self,
        *,
        header_name: str = "X-Session-Id",
        generator: Callable[[], str] | None = None,
        validator: Callable[[str], bool] | None = None,
        on_invalid: OnInvalid = "replace",
        user_id: Callable[[Any], object] | None = None,
        baggage: bool = False,
        from_baggage: bool = False,
        trust_incoming: bool = True,
        issue_ids: bool = True,
        secret: str | bytes | Sequence[str | bytes] | None = None,
        path_param: str | None = None,
        cookie_name: str | None = None,
        cookie_options: CookieOptions | None = None,
    ) -> None:
        if not isinstance(header_name, str) or not _TOKEN.fullmatch(header_name):
            raise ValueError(
                f"header_name={header_name!r} is not a valid HTTP header name: use a non-empty "
                "token of letters, digits and !#$%&'*+-.^_`|~, such as 'X-Session-Id'"
            )
        if on_invalid not in ("replace", "reject"):
            raise ValueError(f"on_invalid={on_invalid!r}: use 'replace' or 'reject'")
        if not issue_ids and not trust_incoming:
            raise ValueError(
                "issue_ids=False with trust_incoming=False: session-mw would neither use an "
                "incoming id nor make one, so no request would get a session. Keep "
                "trust_incoming=True to use the ids the app issues, or issue_ids=True"
            )
        self.header_name = header_name
        self._generator = generator or generate_id
        self._validator: Callable[[str], object] = validator or _VALID.fullmatch
        self._signer = None if secret is None else Signer(secret)
        # The default path calls the generator and the regex straight away: one Python call less
        # per request. Anything user-supplied, or signing, goes through the guarded methods.
        plain = generator is None and secret is None
        self.generate = generate_id if plain else self._guarded_generate
        self.validate: Callable[[str], object] = (
            _VALID.fullmatch if validator is None and secret is None else self._guarded_validate
        )
        self.reject = on_invalid == "reject"
        self.rule = ID_RULE if validator is None else "a value the configured validator accepts"
        if secret is not None:
            self.rule += ", signed by this service"
        self.user_id = user_id
        self.baggage = baggage
        self.from_baggage = from_baggage
        self.trust_incoming = trust_incoming
        self.issue_ids = issue_ids
        if path_param is not None and (not isinstance(path_param, str) or not path_param):
            raise ValueError(f"path_param={path_param!r}: use a route parameter name: 'thread_id'")
        self.path_param = path_param
        if cookie_name is None and cookie_options is not None:
            raise ValueError("cookie_options without cookie_name: set cookie_name too")
        self.cookie = None if cookie_name is None else SessionCookie(cookie_name, cookie_options)
        sample = self._generator()
        if not isinstance(sample, str) or not self._validator(sample):
            raise ValueError(
                f"generator returned {sample!r}, which the validator refuses: make the generator "
                f"return {self.rule}, or pass a validator that accepts its ids"
            )

    def _guarded_generate(self) -> str:
        try:
            value = self._generator()
        except Exception:
            logger.warning("The session id generator raised; using a UUID4", exc_info=True)
            value = generate_id()
        return value if self._signer is None else self._signer.sign(value)

    def _guarded_validate(self, value: str) -> bool:
        if self._signer is not None:
            if not self._signer.verify(value):
                return False
            value = value.rpartition(".")[0]
        try:
            return bool(self._validator(value))
        except Exception:
            logger.warning(
                "The session id validator raised; treating the id as invalid", exc_info=True
            )
            return False

    def choose(self, raw: str | None, where: str | None = None) -> str | None:
        """The id to use for a request whose header (or the source ``where`` names) held ``raw``.

        ``None``: the request runs without a session (``issue_ids=False`` and no usable id).
        Raises :class:`Rejected` for an invalid id with ``on_invalid="reject"``.
        """
        if raw is None or not self.trust_incoming:
            return self.generate() if self.issue_ids else None
        if self.validate(raw):
            return raw
        if self.reject:
            raise Rejected
        # Never the raw value: it is attacker-controlled (CR/LF would forge log lines).
        logger.warning(
            "Ignored an invalid %s (%d characters; expected %s); %s",
            where or f"{self.header_name} request header",
            len(raw),
            self.rule,
            "the request gets a new session id" if self.issue_ids else "no session",
        )
        return self.generate() if self.issue_ids else None

    def attributes(self, request: object, path: str, method: str) -> dict[str, AttributeValue]:
        """The attributes a request's session opens with."""
        attributes: dict[str, AttributeValue] = {"url.path": path, "http.request.method": method}
        if self.user_id is not None:
            try:
                user = self.user_id(request)
            except Exception:
                logger.warning("The user_id callable raised; no user.id", exc_info=True)
                user = None
            if user is not None:
                attributes["user.id"] = str(user)
        return attributes

    def rejection(self, where: str | None = None) -> bytes:
        """The body of the 400 response given when ``on_invalid="reject"``."""
        where = where or f"{self.header_name} request header"
        return f"Invalid {where}: expected {self.rule}.\n".encode()

    def sources(self) -> bool:
        """Whether any source besides the header is configured (the adapters' slower path)."""
        return self.path_param is not None or self.cookie is not None or self.from_baggage

    def pick(
        self,
        path_params: Mapping[str, object] | None,
        header: str | None,
        cookie_header: Callable[[], str | None],
        baggage_header: Callable[[], str | None],
    ) -> tuple[str | None, str | None]:
        """The incoming id, by precedence, and where it came from (``None``: the header).

        The path parameter (the URL names the conversation), the header, the cookie, the
        baggage entry. The cookie and baggage headers are read only when they are needed.
        """
        if self.path_param is not None and path_params is not None:
            value = path_params.get(self.path_param)
            if value is not None:
                return str(value), f"{self.path_param} path parameter"
        if header is not None:
            return header, None
        if self.cookie is not None:
            cookies = cookie_header()
            value = None if cookies is None else self.cookie.read(cookies)
            if value is not None:
                return value, f"{self.cookie.name} cookie"
        if self.from_baggage:
            baggage = baggage_header()
            value = None if baggage is None else session_id_from_baggage(baggage)
            if value is not None:
                return value, "session.id baggage entry"
        return None, None


def session_id_from_baggage(header: str) -> str | None:
    """The ``session.id`` entry of a W3C ``baggage`` header value, percent-decoded, or ``None``."""
    value = get_baggage("session.id", _BAGGAGE.extract({"baggage": header}))
    return value if isinstance(value, str) else None
