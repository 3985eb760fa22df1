"""The apps benchmarks.server_instructions serves (Litestar, Quart and Falcon among them: the
floors run, which lacks them, leaves this module out)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from starlette.testclient import TestClient
from werkzeug.test import Client as WerkzeugClient

from benchmarks.harness import SESSION_ID
from benchmarks.server_instructions import SUITES

SERVED = [
    (key, name)
    for key, suite in SUITES.items()
    for name, (_, django) in suite.variants.items()
    if not django  # Django's variants are one project, chosen by an environment variable
]


@pytest.mark.parametrize(("key", "name"), SERVED, ids=[f"{k}: {n}" for k, n in SERVED])
def test_every_served_variant_answers_its_route_and_marker(key: str, name: str) -> None:
    # A server benchmark of error answers would measure nothing; session-mw is in every variant
    # that says so.
    suite = SUITES[key]
    module, attribute = suite.variants[name][0].split(":")
    app = getattr(importlib.import_module(module), attribute)
    client: Any = WerkzeugClient(app) if suite.server == "gunicorn" else TestClient(app)
    for path in (suite.path, suite.marker):
        response = client.get(path, headers={"X-Session-Id": SESSION_ID})
        assert response.status_code == 200, (path, response.status_code)
        if name.startswith("session-mw"):
            assert response.headers["X-Session-Id"] == SESSION_ID
