"""Flask's extension API (``SessionMiddleware(app)`` or ``init_app(app)``, settings from
``app.config``), shared by the Flask and Quart extensions, which differ only in what they wrap."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from session_mw._options import PREFIX, Options, from_config, from_keywords, keywords

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from session_mw._options import Keywords

__all__ = ["EXTENSION", "Extension"]

#: The key of ``app.extensions`` under which the extension registers (the wrapped app).
EXTENSION = "session_mw"


class App(Protocol):
    """What the extension uses of a Flask or Quart app."""

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> MutableMapping[str, Any]: ...

    @property
    def extensions(self) -> dict[str, Any]: ...


A = TypeVar("A")  # Flask or Quart (their types do not match App for mypy, so no bound)


class Extension(Generic[A]):
    """An extension wrapping one app's WSGI or ASGI callable, configured through its config."""

    def __init__(self, app: A | None = None, **options: Unpack[Keywords]) -> None:
        from_keywords(options)  # mistakes in the keywords raise here, naming the keyword
        self._defaults = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: A) -> None:
        """Wrap the app, configured from ``app.config`` (read now: set it before)."""
        target = cast("App", app)
        if EXTENSION in target.extensions:
            raise RuntimeError(
                f"session-mw is already registered on the {type(app).__name__} app "
                f"{target.name!r}: call SessionMiddleware(app) or init_app(app) once per app"
            )
        options = from_config(target.config, list(target.config), self._defaults)
        for name, value in keywords(options).items():
            target.config.setdefault(PREFIX + name.upper(), value)
        target.extensions[EXTENSION] = self._wrap(app, options)

    def _wrap(self, app: A, options: Options) -> object:
        """Put the middleware around ``app``'s callable and return it."""
        raise NotImplementedError
