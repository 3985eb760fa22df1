"""Signed session ids: a client can only resume a session that this server issued.

A signed id is ``<id>.<tag>``: ``<id>`` as the generator made it (a UUID4 by default), and
``<tag>`` the first 16 bytes of HMAC-SHA256(secret, ``<id>``), base64url without padding
(22 characters). Every character stays within the id rule, so signed ids pass through headers,
logs and baggage like any other. Verification accepts a tag made with any of the configured
secrets, so secrets can be rotated: put the new one first (it signs), keep the old ones after it
until the sessions they signed have ended.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Sequence

__all__ = ["Signer"]

_TAG_BYTES = 16
_TAG_LENGTH = 22  # base64url of 16 bytes, padding removed


class Signer:
    """Signs ids with the first secret and verifies them against all of them.

    :param secrets: one secret, or several for rotation (the first signs); ``str`` secrets are
        UTF-8 encoded. Each must be at least 16 bytes long.
    """

    __slots__ = ("_keys",)

    def __init__(self, secrets: str | bytes | Sequence[str | bytes]) -> None:
        listed = [secrets] if isinstance(secrets, (str, bytes)) else list(secrets)
        keys = [s.encode() if isinstance(s, str) else bytes(s) for s in listed]
        if not keys or any(len(key) < _TAG_BYTES for key in keys):
            raise ValueError(
                "secret: give one secret (or a list, newest first) of at least 16 bytes each, "
                "for example secrets.token_urlsafe(32) kept in your configuration"
            )
        self._keys = keys

    def sign(self, value: str) -> str:
        return f"{value}.{_tag(self._keys[0], value)}"

    def verify(self, signed: str) -> bool:
        value, dot, tag = signed.rpartition(".")
        if not dot or len(tag) != _TAG_LENGTH:
            return False
        # compare_digest for every key, without stopping early: timing tells nothing.
        results = [hmac.compare_digest(tag, _tag(key, value)) for key in self._keys]
        return any(results)


def _tag(key: bytes, value: str) -> str:
    digest = hmac.digest(key, value.encode(), "sha256")[:_TAG_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
