"""API key checks, in constant time over every configured key."""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from quart import Request


class KeyRing:
    """A set of accepted keys, encoded once; `matches` compares against all of them."""

    def __init__(self, keys: list[SecretStr] | SecretStr | None) -> None:
        items = keys if isinstance(keys, list) else ([keys] if keys else [])
        self._keys = [k.get_secret_value().encode() for k in items if k.get_secret_value()]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def matches(self, candidate: str | None) -> bool:
        if not candidate:
            return False
        given = candidate.encode()
        found = False
        for key in self._keys:  # no early exit: time does not depend on which key matched
            found |= hmac.compare_digest(given, key)
        return found


def presented_key(request: Request, header: str) -> str | None:
    """The key from `header` (X-Service-Key / X-API-Key) or `Authorization: Bearer <key>`."""
    value = request.headers.get(header)
    if value:
        return value.strip()
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None
