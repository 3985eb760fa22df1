"""The options every adapter takes: each declared once, with its type, default, check and doc.

Keywords (``SessionMiddleware(app, header_name=...)``), Flask's ``app.config`` and Django's
settings (``SESSION_MW_HEADER_NAME``) are all read by :func:`read`, so a mistake gets the same
answer everywhere: an error that names the keyword or setting as the user wrote it and says what
to change. Nothing is coerced: ``"false"`` from an environment variable is not a bool.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypedDict, TypeVar

from session_mw._bridge import ID_ATTRIBUTES
from session_mw._cookies import CookieOptions, SessionCookie
from session_mw._ids import ID_RULE, generate_id, is_valid_id
from session_mw._signing import Signer

__all__ = [
    "PREFIX",
    "Keywords",
    "OptionError",
    "Options",
    "document",
    "from_config",
    "from_keywords",
    "keywords",
]

#: Flask's ``app.config`` keys and Django's settings: ``SESSION_MW_`` and the option's name.
PREFIX = "SESSION_MW_"

# RFC 7230 token: what a header field name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class OptionError(Exception):
    """A configuration mistake; raised as :class:`TypeError` or :class:`ValueError`."""


class OptionTypeError(OptionError, TypeError):
    pass


class OptionValueError(OptionError, ValueError):
    pass


C = TypeVar("C", bound=type)

# A check takes the value and the key the user wrote it under, and returns the value to use.
Check = Callable[[Any, str], Any]


def _option(default: Any, check: Check) -> Any:
    return dataclasses.field(default=default, metadata={"check": check})


def _header_name(value: object, key: str) -> str:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise OptionValueError(
            f"{key}={value!r} is not a valid HTTP header name: use a non-empty token of letters, "
            "digits and !#$%&'*+-.^_`|~, such as 'X-Session-Id'"
        )
    return value


def _callable(value: object, key: str) -> Callable[..., Any] | None:
    if isinstance(value, str):  # a dotted path, as Django's own settings name callables
        module, _, name = value.rpartition(".")
        try:
            value = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as error:
            raise OptionValueError(
                f"{key}={value!r} cannot be imported ({error}): give a callable, or the dotted "
                "path of one ('myapp.ids.make_id')"
            ) from None
    if value is not None and not callable(value):
        raise OptionTypeError(f"{key}={value!r} is not callable: give a function, or None")
    return value


def _bool(value: object, key: str) -> bool:
    if type(value) is not bool:
        hint = " (any non-empty string counts as true)" if isinstance(value, str) else ""
        raise OptionTypeError(f"{key}={value!r} is not a bool{hint}: use True or False")
    return value


def _on_invalid(value: object, key: str) -> str:
    if value not in ("replace", "reject"):
        raise OptionValueError(f"{key}={value!r}: use 'replace' or 'reject'")
    return value


def _secret(value: object, key: str) -> object:
    if value is None:
        return None
    secrets = [value] if isinstance(value, (str, bytes)) else value
    if not isinstance(secrets, (list, tuple)) or not all(
        isinstance(s, (str, bytes)) for s in secrets
    ):
        raise OptionTypeError(f"{key}: give a str or bytes secret, or a list of them, newest first")
    try:
        Signer(secrets)
    except ValueError as error:  # its message starts "secret: "
        raise OptionValueError(f"{key}: {str(error).removeprefix('secret: ')}") from None
    return value


def _attribute_names(value: object, key: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise OptionTypeError(
            f"{key}={value!r}: give a list of attribute names, such as ['session.id']"
        )
    if not value or not all(isinstance(name, str) and name for name in value):
        raise OptionValueError(f"{key}={value!r}: give at least one non-empty attribute name")
    return tuple(value)


def _path_param(value: object, key: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise OptionValueError(f"{key}={value!r}: use a route parameter name such as 'thread_id'")
    return value


def _cookie_name(value: object, key: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not _TOKEN.fullmatch(value)):
        raise OptionValueError(
            f"{key}={value!r} is not a valid cookie name: use a non-empty token of letters, "
            "digits and !#$%&'*+-.^_`|~, such as 'session_id'"
        )
    return value


def _cookie_options(value: object, key: str) -> CookieOptions | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise OptionTypeError(f"{key}={value!r}: give a dict such as {{'max_age': 3600}}")
    try:
        SessionCookie("session_id", dict(value))  # type: ignore[arg-type]
    except ValueError as error:
        raise OptionValueError(f"{key}: {error}") from None
    return dict(value)  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class Options:
    """The checked options of one adapter: build it with :func:`from_keywords` or
    :func:`from_config`, which check every value. The lines below document the options in every
    adapter's ``help()``.

    :param header_name: the request and response header carrying the session id, matched
        case-insensitively.
    :param generator: makes ids for requests without a usable one; UUID4 strings by default.
        Checked against the validator at start-up.
    :param validator: ``str -> bool``: may an incoming id be used? The default accepts 1 to 128
        characters from ASCII letters, digits and ``- _ . : @ + = /``.
    :param on_invalid: ``'replace'`` gives a request with an invalid id a new one and logs a
        warning (without the raw value); ``'reject'`` answers 400 saying what a valid id is.
    :param user_id: given the request (the ASGI scope, the WSGI environ, Django's request),
        returns its user id or None; it becomes ``user.id`` on spans and in the OpenTelemetry
        context.
    :param baggage: also put ``session.id`` into W3C baggage, which OpenTelemetry's propagator
        sends on every outgoing call, to every host.
    :param from_baggage: when no other source has an id, take it from an incoming ``baggage``
        ``session.id`` entry (validated like the header).
    :param trust_incoming: False ignores incoming ids and always makes a new one: for public
        endpoints whose clients must not choose their session.
    :param issue_ids: False never makes an id and never writes the response header, for apps
        that issue the id themselves (an MCP server's ``Mcp-Session-Id``): a request without a
        usable id runs without a session.
    :param secret: sign generated ids and accept only incoming ids this service signed; a list
        of secrets, newest first, allows rotation. Each at least 16 bytes.
    :param path_param: the route's path parameter that names the conversation
        (``/threads/{thread_id}``): on routes that have it, its value is the id, before the
        header.
    :param cookie_name: read the id from this cookie when the header is absent, and set the
        cookie on every response that carries the header (for pages without a script).
    :param cookie_options: the cookie's attributes: ``max_age``, ``domain``, ``path``,
        ``samesite``, ``secure``, ``httponly``.
    :param id_attributes: the attributes the server span gets the id under: ``session.id``
        (OpenInference, Phoenix, Langfuse) and ``gen_ai.conversation.id`` (OpenTelemetry's GenAI
        conventions, Logfire, Langfuse, Weave); add a backend's own (``wandb.thread_id``), or
        leave one out. Give the span and log record processors the same.

    Callables may also be given as dotted paths (``"myapp.ids.make_id"``).
    """

    header_name: str = _option("X-Session-Id", _header_name)
    generator: Callable[[], str] | None = _option(None, _callable)
    validator: Callable[[str], object] | None = _option(None, _callable)
    on_invalid: Literal["replace", "reject"] = _option("replace", _on_invalid)
    user_id: Callable[[Any], object] | None = _option(None, _callable)
    baggage: bool = _option(False, _bool)
    from_baggage: bool = _option(False, _bool)
    trust_incoming: bool = _option(True, _bool)
    issue_ids: bool = _option(True, _bool)
    secret: str | bytes | Sequence[str | bytes] | None = _option(None, _secret)
    path_param: str | None = _option(None, _path_param)
    cookie_name: str | None = _option(None, _cookie_name)
    cookie_options: CookieOptions | None = _option(None, _cookie_options)
    id_attributes: tuple[str, ...] = _option(ID_ATTRIBUTES, _attribute_names)


_FIELDS = {f.name: f for f in dataclasses.fields(Options)}


class Keywords(TypedDict, total=False):
    """The options as keyword arguments, for type checkers (``**options: Unpack[Keywords]``):
    :class:`Options`' fields, names and types, as a test checks."""

    header_name: str
    generator: Callable[[], str] | str | None
    validator: Callable[[str], object] | str | None
    on_invalid: Literal["replace", "reject"]
    user_id: Callable[[Any], object] | str | None
    baggage: bool
    from_baggage: bool
    trust_incoming: bool
    issue_ids: bool
    secret: str | bytes | Sequence[str | bytes] | None
    path_param: str | None
    cookie_name: str | None
    cookie_options: CookieOptions | None
    id_attributes: Sequence[str]


def from_keywords(keywords: Mapping[str, object], owner: str = "SessionMiddleware") -> Options:
    """The options given as keywords to ``owner``, checked."""
    for name in keywords:
        if name not in _FIELDS:
            hint = _closest(name, _FIELDS) or f"; the options are: {', '.join(_FIELDS)}"
            raise OptionTypeError(f"{owner}() got an unexpected keyword argument {name!r}{hint}")
    return _read(keywords, {name: name for name in keywords})


def keywords(options: Options) -> dict[str, Any]:
    """``options`` as the keywords an adapter takes."""
    return {name: getattr(options, name) for name in _FIELDS}


def from_config(
    config: Mapping[str, object], keys: Iterable[str], defaults: Mapping[str, object] | None = None
) -> Options:
    """The options that ``SESSION_MW_<OPTION>`` entries of ``config`` give (``keys``: every key
    the config holds, so that misspelled ones are found), over ``defaults`` (keywords)."""
    known = {PREFIX + name.upper(): name for name in _FIELDS}
    values = dict(defaults or {})
    spelled = {name: name for name in values}
    for key in keys:
        if not key.startswith(PREFIX):
            continue
        if key not in known:
            valid = ", ".join(known)
            raise OptionValueError(
                f"{key} is not a session-mw setting{_closest(key, known) or '.'} "
                f"The settings are: {valid}"
            )
        values[known[key]] = config[key]
        spelled[known[key]] = key
    return _read(values, spelled)


def _read(values: Mapping[str, object], spelled: Mapping[str, str]) -> Options:
    checked = {
        name: _FIELDS[name].metadata["check"](value, spelled[name])
        for name, value in values.items()
    }
    options = Options(**checked)
    _check_together(options, lambda name: spelled.get(name, name))
    return options


def _check_together(options: Options, key: Callable[[str], str]) -> None:
    if not options.issue_ids and not options.trust_incoming:
        raise OptionValueError(
            f"{key('issue_ids')}=False with {key('trust_incoming')}=False: session-mw would "
            "neither use an incoming id nor make one, so no request would get a session. Keep "
            "trust_incoming True to use the ids the app issues, or issue_ids True"
        )
    if options.cookie_name is None and options.cookie_options is not None:
        raise OptionValueError(
            f"{key('cookie_options')} without {key('cookie_name')}: set cookie_name too"
        )
    if not options.issue_ids and options.generator is None:
        return  # no id is ever made (a task worker's, an MCP server's): nothing to check
    # The generator's ids must pass the validator, or every new session would be refused.
    sample = (options.generator or generate_id)()
    validator = options.validator or is_valid_id
    if not isinstance(sample, str) or not validator(sample):
        rule = ID_RULE if options.validator is None else "ids the configured validator accepts"
        raise OptionValueError(
            f"{key('generator')} returned {sample!r}, which the validator refuses: make the "
            f"generator return {rule}, or pass a validator ({key('validator')}) that accepts "
            "its ids"
        )


def _closest(name: str, valid: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(valid), n=1)
    return f": did you mean {match[0]!r}?" if match else ""


def _documented() -> dict[str, str]:
    """Each option's ``:param`` text in the :class:`Options` docstring, by name."""
    text = inspect.cleandoc(Options.__doc__ or "")
    found = dict(re.findall(r"^:param (\w+): (.*?)(?=^:param |^\S|\Z)", text, re.M | re.S))
    return {name: " ".join(found[name].split()) for name in _FIELDS}


def document(config: bool) -> Callable[[C], C]:
    """Class decorator: append every option, with its default, to the class's docstring (as
    keyword ``:param:`` lines, or as ``SESSION_MW_*`` settings when ``config``)."""

    def decorate(cls: C) -> C:
        if config:
            title = (
                "Settings (``SESSION_MW_<NAME>``; keywords give defaults the settings override):"
            )
        else:
            title = (
                "Options (keyword-only; ``SESSION_MW_<NAME>`` in Flask's and Django's settings):"
            )
        lines = [title, ""]
        for name, doc in _documented().items():
            label = PREFIX + name.upper() if config else name
            text = f":param {label}: {doc} Default: ``{_FIELDS[name].default!r}``."
            lines.append(textwrap.fill(text, 96, subsequent_indent="    "))
        cls.__doc__ = (
            (cls.__doc__ or "").rstrip() + "\n\n" + textwrap.indent("\n".join(lines), "    ")
        )
        return cls

    return decorate
