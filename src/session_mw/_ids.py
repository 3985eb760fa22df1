"""Session ids: how new ones are made, and which incoming ones are well-formed."""

from __future__ import annotations

import binascii
import os
import re

__all__ = ["ID_RULE", "generate_id", "is_valid_id", "match_valid"]

ID_RULE = "1 to 128 characters from ASCII letters, digits and - _ . : @ + = /"

# Nothing outside this set can break a header, a log line, a CSV export or a URL path segment.
_VALID = re.compile(r"[A-Za-z0-9\-_.:@+=/]{1,128}")
#: :func:`is_valid_id` without its Python frame, for the request path: a match or ``None``.
match_valid = _VALID.fullmatch

_BATCH = 256
_pool: list[str] = []
# A forked child (gunicorn and Celery prefork workers, multiprocessing) starts with a copy of its
# parent's pool: drawing from it would give two processes the same ids, two conversations one
# session. (Windows has no fork, and no register_at_fork.)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pool.clear)

# The 36-character form, one id per 37-byte line: where each of the 32 hex digits of an id goes
# (after the dashes), the version digit (a 4) and the variant digit (8, 9, a or b).
_LINE = 37
_COLUMNS = [
    digit + (digit >= 8) + (digit >= 12) + (digit >= 16) + (digit >= 20) for digit in range(32)
]
_VERSION, _VARIANT = _COLUMNS[12], _COLUMNS[16]  # 14 and 19
_TO_VARIANT = bytes.maketrans(b"0123456789abcdef", b"89ab" * 4)
_DASHES = b"-" * (_LINE * _BATCH)


def _uuid4_batch() -> list[str]:
    digits = binascii.hexlify(os.urandom(16 * _BATCH))
    lines = bytearray(_DASHES)
    # Column by column over the whole batch, in C: five slices and an f-string per id cost 7,600
    # instructions an id, these copies 1,700 (6,300 less per request that gets a new id).
    for digit, column in enumerate(_COLUMNS):
        lines[column::_LINE] = digits[digit::32]
    lines[_VERSION::_LINE] = b"4" * _BATCH
    lines[_VARIANT::_LINE] = digits[16::32].translate(_TO_VARIANT)
    lines[_LINE - 1 :: _LINE] = b"\n" * _BATCH
    return lines.decode("ascii").split()


def generate_id() -> str:
    """Return a new random id in ``str(uuid.uuid4())`` form.

    Same randomness source as :func:`uuid.uuid4` (``os.urandom``), but drawn 256 ids at a time:
    ``str(uuid.uuid4())`` costs more than this middleware's whole per-request budget.
    ``list.pop`` and ``list.extend`` are atomic, so threads never share an id.

    >>> import uuid
    >>> i = generate_id()
    >>> uuid.UUID(i).version, str(uuid.UUID(i)) == i
    (4, True)
    """
    try:
        return _pool.pop()
    except IndexError:
        _pool.extend(_uuid4_batch())
        return _pool.pop()


def is_valid_id(value: str) -> bool:
    """The default validator: ``value`` is 1 to 128 characters from ``A-Z a-z 0-9 - _ . : @ + = /``.

    >>> is_valid_id("chat-42"), is_valid_id("a,b"), is_valid_id("")
    (True, False, False)
    """
    return _VALID.fullmatch(value) is not None
