"""Trust controls: ignoring incoming ids, signed ids, rotation, forgery, and crashing callables."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from werkzeug.test import Client

from session_mw import SessionMiddleware, current_session
from session_mw._ids import is_valid_id
from session_mw._signing import Signer
from session_mw.wsgi import SessionMiddleware as WsgiSessionMiddleware
from tests.clients import policy as IdPolicy

OLD = "old-secret-0123456789abcdef"
NEW = "new-secret-0123456789abcdef"
SIGNED = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.[\w-]{22}"
)


async def whoami(request: Request) -> PlainTextResponse:
    return PlainTextResponse(current_session().id)  # type: ignore[union-attr]


def client(**options: Any) -> TestClient:
    return TestClient(SessionMiddleware(Starlette(routes=[Route("/", whoami)]), **options))


def test_trust_incoming_false_always_generates() -> None:
    public = client(trust_incoming=False)
    response = public.get("/", headers={"X-Session-Id": "chosen-by-client"})
    assert response.text != "chosen-by-client"
    assert uuid.UUID(response.text).version == 4
    assert response.headers["x-session-id"] == response.text


def test_signed_ids_are_issued_and_resumed() -> None:
    signed = client(secret=NEW)
    issued = signed.get("/").text
    assert SIGNED.fullmatch(issued)
    assert is_valid_id(issued)  # signed ids keep to the id rule
    assert signed.get("/", headers={"X-Session-Id": issued}).text == issued


@pytest.mark.parametrize(
    "forged",
    [
        "0b5f8f0e-3c7e-4e36-9a55-4a8b3f1f0f0e",  # unsigned
        "0b5f8f0e-3c7e-4e36-9a55-4a8b3f1f0f0e.AAAAAAAAAAAAAAAAAAAAAA",  # made-up tag
        "somebody-else.xxxxxxxxxxxxxxxxxxxxxx",
        ".",
    ],
)
def test_forged_or_unsigned_ids_are_replaced(forged: str) -> None:
    response = client(secret=NEW).get("/", headers={"X-Session-Id": forged})
    assert response.text != forged
    assert SIGNED.fullmatch(response.text)


def test_tag_of_another_id_does_not_transfer() -> None:
    signer = Signer(NEW)
    tag = signer.sign("victim-session").rpartition(".")[2]
    assert not signer.verify(f"attacker-session.{tag}")
    assert signer.verify(f"victim-session.{tag}")


def test_rotation_accepts_old_tags_and_signs_with_the_new_secret() -> None:
    before = client(secret=OLD).get("/").text
    rotated = client(secret=[NEW, OLD])
    assert rotated.get("/", headers={"X-Session-Id": before}).text == before
    fresh = rotated.get("/").text
    assert Signer(NEW).verify(fresh)
    assert not Signer(OLD).verify(fresh)
    retired = client(secret=NEW)  # once OLD is dropped, its sessions are no longer resumed
    assert retired.get("/", headers={"X-Session-Id": before}).text != before


def test_reject_mode_with_signing_names_the_rule() -> None:
    response = client(secret=NEW, on_invalid="reject").get("/", headers={"X-Session-Id": "x"})
    assert response.status_code == 400
    assert "signed by this service" in response.text


def test_signing_a_custom_generators_ids_and_custom_validation() -> None:
    policy = IdPolicy(
        secret=NEW, generator=lambda: "conv-1", validator=lambda v: v.startswith("conv-")
    )
    signed = policy.choose(None)
    assert signed is not None
    assert signed.startswith("conv-1.")
    assert policy.choose(signed) == signed
    other = Signer(NEW).sign("chat-1")  # validly signed, but the validator refuses its body
    assert policy.choose(other) != other


@pytest.mark.parametrize("secret", ["short", b"", []])
def test_weak_secrets_are_refused_with_advice(secret: Any) -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        IdPolicy(secret=secret)


def boom(*args: object) -> Any:
    raise RuntimeError("user code bug")


def test_crashing_generator_falls_back_to_a_uuid(caplog: pytest.LogCaptureFixture) -> None:
    calls = iter([True])

    def flaky() -> str:
        if next(calls, False):
            return "first-call-ok"  # the construction-time check
        raise RuntimeError("generator bug")

    with caplog.at_level(logging.WARNING, logger="session_mw"):
        response = client(generator=flaky).get("/")
    assert response.status_code == 200
    assert uuid.UUID(response.text).version == 4
    assert "generator raised" in caplog.text
    assert current_session() is None


def test_crashing_validator_treats_the_id_as_invalid(caplog: pytest.LogCaptureFixture) -> None:
    def picky(value: str) -> bool:
        if value == "abc":
            raise RuntimeError("validator bug")
        return True

    with caplog.at_level(logging.WARNING, logger="session_mw"):
        response = client(validator=picky).get("/", headers={"X-Session-Id": "abc"})
    assert response.status_code == 200
    assert response.text != "abc"
    assert "validator raised" in caplog.text


def test_validator_that_crashes_at_construction_says_so() -> None:
    with pytest.raises(RuntimeError, match="user code bug"):
        IdPolicy(validator=boom)


def test_crashing_user_id_only_loses_the_user(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [])
        return [str(dict(current_session().attributes).get("user.id")).encode()]  # type: ignore[union-attr]

    with caplog.at_level(logging.WARNING, logger="session_mw"):
        response = Client(WsgiSessionMiddleware(app, user_id=boom)).get("/")
    assert response.get_data() == b"None"
    response.close()
    assert "user_id callable raised" in caplog.text
