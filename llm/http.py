"""The HTTP clients under the upstream calls, and the one thing they misreport.

The official clients default to httpx/httpx2 on httpcore (pure-Python HTTP); their supported aiohttp
variants parse in C and cost the process much less CPU per call (BENCHMARKS.md):

- the openai SDK: `openai.DefaultAioHttpClient` (its `aiohttp` extra, vendored httpx-aiohttp);
- httpx clients (ollama's here, the router's in router/client.py): `httpx_aiohttp.AiohttpTransport`,
  passed as `transport=`.

Both map aiohttp's errors to httpx's, and both report a refused connection (and a peer that hangs
up) as `ConnectTimeout`: `aiohttp.ClientConnectionError` is mapped before its more precise
subclasses. `refused()` tells the two apart by the aiohttp error the timeout was raised from, so a
provider that is down is reported as `connect`, not `timeout` (tests/llm/test_provider_contract.py).
"""

from __future__ import annotations

import aiohttp


def refused(exc: BaseException) -> bool:
    """True when `exc` was raised for a connection that could not be made or was dropped (not a
    timeout), whatever the adapter called it."""
    seen: BaseException | None = exc
    for _ in range(8):  # the cause chain is short: ours → SDK's → adapter's → aiohttp's
        if seen is None:
            return False
        if isinstance(seen, aiohttp.ClientConnectionError) and not isinstance(seen, aiohttp.ServerTimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
