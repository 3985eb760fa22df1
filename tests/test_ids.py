from __future__ import annotations

import logging
import re
import string
import subprocess
import sys
import threading
import uuid

import pytest

from session_mw._ids import ID_RULE, generate_id, is_valid_id
from session_mw._pipeline import Rejected
from tests.clients import policy as IdPolicy


def test_generated_ids_are_uuid4_strings_and_unique() -> None:
    ids = [generate_id() for _ in range(3000)]  # crosses several refills of the pool
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert is_valid_id(value)


def test_every_random_digit_takes_every_value() -> None:
    # The 30 random digits of 3000 ids: each position sees all 16 hex values (all four variant
    # values at the variant digit), so no digit is copied from the wrong place or left fixed.
    ids = [generate_id() for _ in range(3000)]
    for position in range(36):
        seen = {value[position] for value in ids}
        if position in {8, 13, 18, 23}:
            assert seen == {"-"}
        elif position == 14:
            assert seen == {"4"}
        elif position == 19:
            assert seen == set("89ab")
        else:
            assert seen == set(string.hexdigits.lower()), position


FORKED = """
import os
from session_mw._ids import generate_id, _BATCH

first = generate_id()  # fills the pool: this process holds _BATCH - 1 ids not handed out yet
read, write = os.pipe()
child = os.fork()
if child == 0:
    os.write(write, " ".join(generate_id() for _ in range(_BATCH)).encode())
    os._exit(0)
os.close(write)
with os.fdopen(read) as pipe:
    in_child = pipe.read().split()
os.waitpid(child, 0)
in_parent = [first] + [generate_id() for _ in range(_BATCH)]
print(len(in_child), len(set(in_child) & set(in_parent)))
"""


def test_a_forked_process_never_draws_its_parents_ids() -> None:
    # gunicorn and Celery prefork workers are forked from a master that may have made ids.
    done = subprocess.run(
        [sys.executable, "-c", FORKED], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["256", "0"], done.stderr


def test_threads_never_share_an_id() -> None:
    results: list[list[str]] = [[] for _ in range(8)]

    def work(out: list[str]) -> None:
        out.extend(generate_id() for _ in range(2000))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [value for out in results for value in out]
    assert len(set(everything)) == len(everything) == 16000


@pytest.mark.parametrize(
    "value",
    ["a", "A" * 128, "chat-42", "user@example.com", "a:b/c+d=e_f.g", string.ascii_letters],
)
def test_valid(value: str) -> None:
    assert is_valid_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "a b",
        "a,b",
        '"quoted"',
        "a\r\nSet-Cookie: x",
        "tab\there",
        "\x00",
        "é",
        "A" * 129,
        "a;b",
        "<script>",
        "a\\b",
        "%0d%0a",
    ],
)
def test_invalid(value: str) -> None:
    assert not is_valid_id(value)


def test_policy_uses_valid_and_generates_for_missing() -> None:
    policy = IdPolicy()
    assert policy.choose("chat-42") == "chat-42"
    generated = policy.choose(None)
    assert generated is not None
    assert uuid.UUID(generated).version == 4


def test_replace_logs_a_warning_without_the_raw_value(caplog: pytest.LogCaptureFixture) -> None:
    policy = IdPolicy()
    with caplog.at_level(logging.WARNING, logger="session_mw"):
        chosen = policy.choose("evil\r\nINJECTED")
    assert chosen is not None
    assert is_valid_id(chosen)
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "INJECTED" not in message
    assert "evil" not in message
    assert "X-Session-Id" in message
    assert ID_RULE in message


def test_reject_raises_and_gives_a_body_that_names_the_header_and_rule() -> None:
    policy = IdPolicy(header_name="X-Conversation", on_invalid="reject")
    with pytest.raises(Rejected) as rejected:
        policy.choose("bad value")
    body = rejected.value.body.decode()
    assert "X-Conversation" in body
    assert ID_RULE in body


def test_custom_generator_and_validator() -> None:
    counter = iter(range(1000))
    policy = IdPolicy(
        generator=lambda: f"conv-{next(counter)}", validator=lambda value: value.startswith("conv-")
    )
    assert policy.choose(None) == "conv-1"  # conv-0 went to the construction-time check
    assert policy.choose("conv-77") == "conv-77"
    assert policy.choose("chat-1") == "conv-2"
    with pytest.raises(Rejected, match="validator"):
        IdPolicy(validator=lambda v: v != "b", on_invalid="reject").choose("b")


@pytest.mark.parametrize(
    ("options", "hint"),
    [
        ({"header_name": ""}, "header_name=''"),
        ({"header_name": "X Session"}, "not a valid HTTP header name"),
        ({"header_name": "X-Session-Id:"}, "such as 'X-Session-Id'"),
        ({"on_invalid": "ignore"}, "use 'replace' or 'reject'"),
        ({"generator": lambda: "has space"}, "make the generator return"),
        ({"generator": lambda: 42}, "generator returned 42"),
        ({"validator": lambda value: False}, "pass a validator ("),
    ],
)
def test_configuration_mistakes_say_what_to_change(options: dict[str, object], hint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(hint)):
        IdPolicy(**options)
