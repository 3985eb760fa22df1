"""``http.route`` for Starlette and FastAPI: the matched route's full template.

Starlette records the matched route in ``scope["route"]`` only in recent versions, and there a
mounted app's route replaces the mount's, losing the prefix; FastAPI's ``scope["route"]`` lacks
``include_router(prefix=...)``. Matching the app's routes ourselves,
as OpenTelemetry's Starlette instrumentation does, works on every version and keeps every
``Mount`` and ``APIRouter`` prefix: ``/api/v1/chat/{conversation_id}``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["find_routes", "route_template"]

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
    # Imported here: `import session_mw` must not import Starlette, and this only runs for apps
    # that have Starlette routes.
    from starlette.routing import Match  # noqa: PLC0415

    partial: str | None = None
    for route in _flattened(routes):
        match, child_scope = route.matches(scope)
        if match is Match.NONE:
            continue
        template: str | None = getattr(route, "path", "")
        inner_routes = getattr(route, "routes", None)
        if inner_routes:  # Mount or Host of a router: the template continues inside
            inner = route_template(inner_routes, {**scope, **child_scope})
            template = None if inner is None else f"{template}{inner}"
        if match is Match.FULL:
            return template  # the router stops here too, even when nothing inside matches
        if partial is None:
            partial = template  # path matched, method did not (405): still this route
    return partial


def _flattened(routes: Iterable[Any]) -> Iterable[Any]:
    # FastAPI >= 0.16x keeps include_router() prefixes in an internal _IncludedRouter instead of
    # copying prefixed routes; its public iter_route_contexts() gives them back with full paths.
    fastapi_routing = sys.modules.get("fastapi.routing")  # no FastAPI loaded: no FastAPI routes
    flatten = getattr(fastapi_routing, "iter_route_contexts", None)
    return routes if flatten is None else flatten(routes)
