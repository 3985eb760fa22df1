from __future__ import annotations

from session_mw import inject_headers, session


def test_outside_a_session_headers_are_unchanged() -> None:
    headers = {"Accept": "application/json"}
    assert inject_headers(headers) is headers
    assert headers == {"Accept": "application/json"}


def test_inside_a_session_the_id_is_added_under_the_configured_name() -> None:
    with session("chat-9"):
        assert inject_headers({}) == {"X-Session-Id": "chat-9"}
        assert inject_headers({}, header_name="X-Conversation") == {"X-Conversation": "chat-9"}
