"""The matched route: ``http.route`` and path parameters, for Starlette, FastAPI and Flask,
and the late route of any framework that finds its template from the request alone.

Starlette records the matched route in ``scope["route"]`` only in recent versions, and there a
mounted app's route replaces the mount's, losing the prefix; FastAPI's ``scope["route"]`` lacks
``include_router(prefix=...)``. Matching the app's routes ourselves,
as OpenTelemetry's Starlette instrumentation does, works on every version and keeps every
``Mount`` and ``APIRouter`` prefix: ``/api/v1/chat/{conversation_id}``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

__all__ = [
    "Templates",
    "find_routes",
    "find_url_map",
    "match_route",
    "match_rule",
    "route_template",
]

PathParams = Mapping[str, Any]

logger = logging.getLogger("session_mw")


class Templates:
    """The late route of a framework whose route template is found from the request alone, so
    that the first answer is final: ``{}`` when no route matches, or when finding it fails."""

    __slots__ = ()

    def template(self, routing: Any) -> str | None:
        """The template of the route the request goes to, or ``None``."""
        raise NotImplementedError

    def late_route(self, routing: Any) -> dict[str, AttributeValue]:
        try:
            template = self.template(routing)
        except Exception:  # a custom route or router must not break whoever reads the session
            logger.debug("Could not match the request's route", exc_info=True)
            return {}
        return {} if template is None else {"http.route": template}


# Deep enough for any middleware stack seen in practice, bounded in case of a cycle.
_MAX_DEPTH = 32


def find_routes(app: object) -> Iterable[Any] | None:
    """The route list of the Starlette app or router that ``app`` wraps, found through ``.app``."""
    for _ in range(_MAX_DEPTH):
        routes = getattr(app, "routes", None)
        if routes is not None:
            return routes  # type: ignore[no-any-return]
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def route_template(routes: Iterable[Any], scope: Mapping[str, Any]) -> str | None:
    """The template of the route that Starlette's router picks for ``scope``, or ``None``.

    ``scope`` holds the request's ``type``, ``path``, ``root_path``, ``method`` and ``headers``
    as they were before routing (routing rewrites ``root_path`` in place).
    """
    return match_route(routes, scope)[0]


def match_route(routes: Iterable[Any], scope: Mapping[str, Any]) -> tuple[str | None, PathParams]:
    """:func:`route_template` and the path parameters of that route, mounts' included."""
    # Imported here: `import session_mw` must not import Starlette, and this only runs for apps
    # that have Starlette routes.
    from starlette.routing import Match  # noqa: PLC0415

    partial: tuple[str | None, PathParams] = (None, {})
    for route in _flattened(routes):
        match, child_scope = route.matches(scope)
        if match is Match.NONE:
            continue
        template: str | None = getattr(route, "path", "")
        params: PathParams = child_scope.get("path_params", {})
        inner_routes = getattr(route, "routes", None)
        if inner_routes:  # Mount or Host of a router: the template continues inside
            inner, params = match_route(inner_routes, {**scope, **child_scope})
            template = None if inner is None else f"{template}{inner}"
        if match is Match.FULL:
            return template, params  # the router stops here too, even when nothing inside matches
        if partial[0] is None:
            partial = template, params  # path matched, method did not (405): still this route
    return partial


def find_url_map(app: object) -> Any | None:
    """The Werkzeug ``Map`` (Flask's ``url_map``) of the app that ``app`` is, or is a method of."""
    for candidate in (app, getattr(app, "__self__", None)):
        url_map = getattr(candidate, "url_map", None)
        if url_map is not None and hasattr(url_map, "bind_to_environ"):
            return url_map
    return None


def match_rule(url_map: Any, environ: Mapping[str, Any]) -> tuple[str | None, PathParams]:
    """The rule Werkzeug's ``url_map`` matches for a WSGI request, and its arguments."""
    try:
        rule, params = url_map.bind_to_environ(environ).match(return_rule=True)
    except Exception:  # 404, 405, a redirect: no route, so no path parameter
        return None, {}
    return rule.rule, params


def _flattened(routes: Iterable[Any]) -> Iterable[Any]:
    # FastAPI >= 0.16x keeps include_router() prefixes in an internal _IncludedRouter instead of
    # copying prefixed routes; its public iter_route_contexts() gives them back with full paths.
    fastapi_routing = sys.modules.get("fastapi.routing")  # no FastAPI loaded: no FastAPI routes
    flatten = getattr(fastapi_routing, "iter_route_contexts", None)
    return routes if flatten is None else flatten(routes)
