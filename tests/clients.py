"""Test clients shared by the test modules."""

from __future__ import annotations

from typing import Any

from werkzeug.test import Client, TestResponse

from session_mw._options import from_keywords
from session_mw._pipeline import Pipeline


def wsgi_get(app: Any, path: str = "/", **kwargs: Any) -> TestResponse:
    """A request as a server makes it: body read in full, then the response closed.

    No cookie jar: the ``Cookie`` header a test sends is the one the app gets.
    """
    response = Client(app, use_cookies=False).open(path, **kwargs)
    try:
        response.get_data()
    finally:
        response.close()
    return response


def policy(**options: Any) -> Pipeline[Any]:
    """The request pipeline an adapter given ``options`` as keywords builds."""
    return Pipeline(from_keywords(options))
