"""The steps every adapter takes for a request (or a task), in one place.

An adapter hands over what only it can find (the header's value, the path, the method, and on
demand the path parameters, cookies, baggage and route, through its :class:`RequestIO`); the
pipeline picks the source by precedence, validates, signs or generates the id, builds the
request attributes and opens and closes the session. What the adapter does with the answer
(echo the header, answer 400) is framework I/O, and stays in the adapter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from opentelemetry.baggage import get_baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.util.types import AttributeValue

from session_mw._cookies import SessionCookie
from session_mw._ids import ID_RULE, generate_id, is_valid_id, match_valid
from session_mw._options import Options, OptionValueError
from session_mw._scope import Session
from session_mw._signing import Signer

__all__ = ["Pipeline", "Rejected", "RequestIO"]

logger = logging.getLogger("session_mw")

R_contra = TypeVar(
    "R_contra", contravariant=True
)  # the framework's request: ASGI scope, WSGI environ, ...
PathParams = Mapping[str, Any]
Route = dict[str, AttributeValue]

_BAGGAGE = W3CBaggagePropagator()


class RequestIO(Protocol[R_contra]):
    """What an adapter finds in its framework's request, asked only when needed."""

    def match(self, request: R_contra) -> tuple[str | None, PathParams]:
        """The route template and path parameters the request will be routed to (only asked
        with ``path_param``, before the app runs)."""

    def cookie_header(self, request: R_contra) -> str | None: ...

    def baggage_header(self, request: R_contra) -> str | None: ...

    def late_route(self, routing: Any) -> Route | None:
        """``{"http.route": template}`` once the app has routed, ``{}`` when nothing matched,
        ``None`` while routing has not run yet (asked again later); ``routing`` is what the
        adapter gave :meth:`Pipeline.begin` (by default the request)."""


class Rejected(Exception):
    """The request's id is invalid and ``on_invalid="reject"``: answer 400 with ``body``."""

    def __init__(self, body: bytes) -> None:
        super().__init__(body)
        self.body = body


class Pipeline(Generic[R_contra]):
    """One adapter's per-request steps, configured once from its :class:`Options`."""

    __slots__ = (
        "_generator",
        "_io",
        "_late",
        "_signer",
        "_sources",
        "_validator",
        "baggage",
        "cookie",
        "from_baggage",
        "generate",
        "header_name",
        "id_attributes",
        "issue_ids",
        "path_param",
        "reject",
        "rule",
        "trust_incoming",
        "user_id",
        "validate",
    )

    def __init__(self, options: Options, io: RequestIO[R_contra] | None = None) -> None:
        self._io = io
        self._late = None if io is None else io.late_route
        self.header_name = options.header_name
        self._generator = options.generator or generate_id
        self._validator: Callable[[str], object] = options.validator or is_valid_id
        self._signer = None if options.secret is None else Signer(options.secret)
        # The default path calls the generator and the validator straight away: one Python call
        # less per request. Anything user-supplied, or signing, goes through the guarded methods.
        plain = options.generator is None and options.secret is None
        self.generate = generate_id if plain else self._guarded_generate
        self.validate: Callable[[str], object] = (
            match_valid
            if options.validator is None and options.secret is None
            else self._guarded_validate
        )
        self.reject = options.on_invalid == "reject"
        self.rule = (
            ID_RULE if options.validator is None else "a value the configured validator accepts"
        )
        if options.secret is not None:
            self.rule += ", signed by this service"
        self.user_id = options.user_id
        self.baggage = options.baggage
        self.id_attributes = options.id_attributes
        self.from_baggage = options.from_baggage
        self.trust_incoming = options.trust_incoming
        self.issue_ids = options.issue_ids
        self.path_param = options.path_param
        name = options.cookie_name
        self.cookie = None if name is None else SessionCookie(name, options.cookie_options)
        # Any source besides the header: only adapters configured with one pay for looking.
        self._sources = self.path_param is not None or self.cookie is not None or self.from_baggage

    def need_routes(self, found: bool, app: object, advice: str) -> None:
        """Raise when ``path_param`` is set but the adapter cannot see ``app``'s routes."""
        if self.path_param is not None and not found:
            raise OptionValueError(
                f"path_param={self.path_param!r}, but session-mw cannot see the routes of "
                f"{app!r}: {advice}, or send the id in the header or a cookie"
            )

    def begin(
        self, request: R_contra, header: str | None, path: str, method: str, routing: object = None
    ) -> Session | None:
        """The session of a request whose id header held ``header`` (``None``: absent), or
        ``None``: it runs without one (``issue_ids=False`` and no usable id). ``routing`` is
        what the adapter's ``late_route`` is given, when not the request itself.

        Raises :class:`Rejected` for an invalid id with ``on_invalid="reject"``.
        """
        if self._sources:
            return self._begin_with_sources(request, header, path, method, routing)
        # Most requests: a valid header, used without choose()'s frame, or none.
        if header is not None and self.trust_incoming and self.validate(header):
            session_id = header
        else:
            chosen = self.choose(header)
            if chosen is None:
                return None
            session_id = chosen
        attributes: dict[str, AttributeValue] = {"url.path": path, "http.request.method": method}
        if self.user_id is not None:
            self._add_user(attributes, request)
        return Session(session_id, attributes, self._late, request if routing is None else routing)

    def _begin_with_sources(
        self, request: R_contra, header: str | None, path: str, method: str, routing: object
    ) -> Session | None:
        io: RequestIO[R_contra] = self._io  # type: ignore[assignment]
        params = route = None
        if self.path_param is not None:
            try:
                route, params = io.match(request)
            except Exception:  # a custom route class must not break the request
                logger.debug("Could not match the request's route", exc_info=True)
                params = {}
        header, where = self._pick(io, request, params, header)
        session_id = self.choose(header, where)
        if session_id is None:
            return None
        attributes: dict[str, AttributeValue] = {"url.path": path, "http.request.method": method}
        if self.user_id is not None:
            self._add_user(attributes, request)
        if params is None:
            return Session(
                session_id, attributes, self._late, request if routing is None else routing
            )
        # Matched already for the path parameter: no second match, no late route.
        if route is not None:
            attributes["http.route"] = route
        return Session(session_id, attributes)

    def choose(self, raw: str | None, where: str | None = None) -> str | None:
        """The id to use for a request (or task) whose source ``where`` (``None``: the header)
        held ``raw``; ``None``: no session. Raises :class:`Rejected` (see :meth:`begin`)."""
        if raw is None or not self.trust_incoming:
            return self.generate() if self.issue_ids else None
        if self.validate(raw):
            return raw
        where = where or f"{self.header_name} request header"
        if self.reject:
            raise Rejected(f"Invalid {where}: expected {self.rule}.\n".encode())
        # Never the raw value: it is attacker-controlled (CR/LF would forge log lines).
        logger.warning(
            "Ignored an invalid %s (%d characters; expected %s); %s",
            where,
            len(raw),
            self.rule,
            "the request gets a new session id" if self.issue_ids else "no session",
        )
        return self.generate() if self.issue_ids else None

    def _pick(
        self,
        io: RequestIO[R_contra],
        request: R_contra,
        params: PathParams | None,
        header: str | None,
    ) -> tuple[str | None, str | None]:
        """The incoming id by precedence, and where it came from (``None``: the header): the
        path parameter (the URL names the conversation), the header, the cookie, baggage."""
        if params is not None:
            value = params.get(self.path_param)  # type: ignore[arg-type]
            if value is not None:
                return str(value), f"{self.path_param} path parameter"
        if header is not None:
            return header, None
        if self.cookie is not None:
            cookies = io.cookie_header(request)
            value = None if cookies is None else self.cookie.read(cookies)
            if value is not None:
                return value, f"{self.cookie.name} cookie"
        if self.from_baggage:
            baggage = io.baggage_header(request)
            value = None if baggage is None else _from_baggage(baggage)
            if value is not None:
                return value, "session.id baggage entry"
        return None, None

    def _add_user(self, attributes: dict[str, AttributeValue], request: object) -> None:
        try:
            user = self.user_id(request)  # type: ignore[misc]
        except Exception:
            logger.warning("The user_id callable raised; no user.id", exc_info=True)
            return
        if user is not None:
            attributes["user.id"] = str(user)

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


def _from_baggage(header: str) -> str | None:
    """The ``session.id`` entry of a W3C ``baggage`` header value, percent-decoded, or ``None``."""
    value = get_baggage("session.id", _BAGGAGE.extract({"baggage": header}))
    return value if isinstance(value, str) else None
