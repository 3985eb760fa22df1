"""The example chat page in a real browser (Debian's headless Chromium, driven by Playwright): a
page on one origin talks to the chat API on another, reads X-Session-Id thanks to the exposed
header, and sends it back, so three turns are one session; the same page served by the API keeps
its session through the cookie alone.

Needs /usr/bin/chromium (``apt-get install chromium``) and the ``playwright`` package; .ci/run
installs both and runs this file as its own step (``scripts/test -m browser``).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

from tests.servers import ROOT, free_port, running

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
STATIC = ROOT / "examples" / "fastapi_app" / "static"


LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
API = ["uvicorn", "--factory", "examples.fastapi_app.app:create_app", "--host", "127.0.0.1"]


def chat(page: Page) -> tuple[list[str], str]:
    """Three turns on the chat page: what it shows of each, and the session id it shows."""
    for number, message in enumerate(["hello", "how are you", "bye"], 1):
        page.fill("#message", message)
        page.click("button")
        page.wait_for_selector(f"#log li:nth-child({number})")
    # The server numbers the turns of each session: 1, 2, 3 means it saw one session throughout.
    turns = [
        re.sub(r" →.*Turn (\d+):.*", r" \1", t) for t in page.locator("#log li").all_inner_texts()
    ]
    return turns, page.inner_text("#session")


def test_chat_page_keeps_one_session_across_three_turns() -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set CHROMIUM)")
    from playwright.sync_api import sync_playwright

    api_port, page_port = free_port(), free_port()
    page_origin = f"http://127.0.0.1:{page_port}"
    env = {**os.environ, "CHAT_ALLOWED_ORIGINS": page_origin}
    static = ["http.server", "--bind", "127.0.0.1", "--directory", str(STATIC), str(page_port)]
    with (
        running(
            [*API, "--port", str(api_port), "--log-level", "warning"], api_port, env=env
        ) as api_url,
        running(static, page_port),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{page_origin}/chat.html?api={api_url}")
            turns, shown = chat(page)
        finally:
            browser.close()
    assert turns == ["hello 1", "how are you 2", "bye 3"]
    assert uuid.UUID(shown).version == 4


def test_same_origin_page_keeps_one_session_through_the_cookie_alone() -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set CHROMIUM)")
    from playwright.sync_api import sync_playwright

    port = free_port()
    with (
        running([*API, "--port", str(port), "--log-level", "warning"], port) as url,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{url}/?carrier=cookie")  # the page never sends X-Session-Id
            turns, shown = chat(page)
            cookies = {c["name"]: c for c in context.cookies()}
        finally:
            browser.close()
    assert turns == ["hello 1", "how are you 2", "bye 3"]
    assert uuid.UUID(shown).version == 4
    assert cookies["chat_session"]["value"] == shown
    assert cookies["chat_session"]["httpOnly"] is True
    assert cookies["chat_session"]["sameSite"] == "Lax"
