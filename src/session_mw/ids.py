"""The id policy: which incoming ids are used, and how new ones are made."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from typing import Any, Literal, TypedDict

from opentelemetry.baggage import get_baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.util.types import AttributeValue

__all__ = ["DEFAULTS", "ID_RULE", "IdPolicy", "Options", "generate_id", "is_valid_id"]

logger = logging.getLogger("session_mw")

_BAGGAGE = W3CBaggagePropagator()

ID_RULE = "1 to 128 characters from ASCII letters, digits and - _ . : @ + = /"

# Nothing outside this set can break a header, a log line, a CSV export or a URL path segment.
_VALID = re.compile(r"[A-Za-z0-9\-_.:@+=/]{1,128}")
# RFC 7230 token: what a header field name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

_BATCH = 256
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}
_pool: list[str] = []


def _uuid4_batch() -> list[str]:
    h = os.urandom(16 * _BATCH).hex()
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-4{h[i + 13 : i + 16]}-"
        f"{_VARIANT[h[i + 16]]}{h[i + 17 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, 32 * _BATCH, 32)
    ]


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


#: Every option with its default value (the Flask adapter fills ``app.config`` from these).
DEFAULTS: Options = {
    "header_name": "X-Session-Id",
    "generator": None,
    "validator": None,
    "on_invalid": "replace",
    "user_id": None,
    "baggage": False,
    "from_baggage": False,
}


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
    """

    __slots__ = (
        "baggage",
        "from_baggage",
        "generate",
        "header_name",
        "reject",
        "rule",
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
    ) -> None:
        if not isinstance(header_name, str) or not _TOKEN.fullmatch(header_name):
            raise ValueError(
                f"header_name={header_name!r} is not a valid HTTP header name: use a non-empty "
                "token of letters, digits and !#$%&'*+-.^_`|~, such as 'X-Session-Id'"
            )
        if on_invalid not in ("replace", "reject"):
            raise ValueError(f"on_invalid={on_invalid!r}: use 'replace' or 'reject'")
        self.header_name = header_name
        self.generate = generator or generate_id
        # The bound regex method rather than is_valid_id: one Python call less per request.
        self.validate: Callable[[str], object] = validator or _VALID.fullmatch
        self.reject = on_invalid == "reject"
        self.rule = ID_RULE if validator is None else "a value the configured validator accepts"
        self.user_id = user_id
        self.baggage = baggage
        self.from_baggage = from_baggage
        sample = self.generate()
        if not isinstance(sample, str) or not self.validate(sample):
            raise ValueError(
                f"generator returned {sample!r}, which the validator refuses: make the generator "
                f"return {self.rule}, or pass a validator that accepts its ids"
            )

    def choose(self, raw: str | None) -> str | None:
        """The id to use for a request whose header held ``raw``; ``None`` means answer 400."""
        if raw is None:
            return self.generate()
        if self.validate(raw):
            return raw
        if self.reject:
            return None
        # Never the raw value: it is attacker-controlled (CR/LF would forge log lines).
        logger.warning(
            "Ignored an invalid %s request header (%d characters; expected %s); "
            "the request gets a new session id",
            self.header_name,
            len(raw),
            self.rule,
        )
        return self.generate()

    def attributes(self, request: object, path: str, method: str) -> dict[str, AttributeValue]:
        """The attributes a request's session opens with."""
        attributes: dict[str, AttributeValue] = {"url.path": path, "http.request.method": method}
        if self.user_id is not None:
            user = self.user_id(request)
            if user is not None:
                attributes["user.id"] = str(user)
        return attributes

    def rejection(self) -> bytes:
        """The body of the 400 response given when ``on_invalid="reject"``."""
        return f"Invalid {self.header_name} request header: expected {self.rule}.\n".encode()


def session_id_from_baggage(header: str) -> str | None:
    """The ``session.id`` entry of a W3C ``baggage`` header value, percent-decoded, or ``None``."""
    value = get_baggage("session.id", _BAGGAGE.extract({"baggage": header}))
    return value if isinstance(value, str) else None
