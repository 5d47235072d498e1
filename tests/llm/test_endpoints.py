"""The clients of community endpoints (llm/endpoints.py) against the loopback OpenAI fake: the
community's key reaches it, the set is bounded, clients are closed when evicted, idle or at
shutdown — never under a call — and a refused endpoint is logged once and not called."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.fernet import Fernet

from config.community import CommunityEndpoint
from llm import endpoints as endpoints_module
from llm.breaker import CircuitBreaker
from llm.endpoints import IDLE_CLOSE_S, EndpointPool
from llm.factory import build_provider
from llm.health import ProviderHealth
from llm.service import LLMService
from llm.types import ChatRequest, ProviderUnavailable
from observability import metrics
from storage.cipher import ConfigCipher
from tests.support import make_settings
from tests.waiting import async_wait_until
from tests.web.admin_support import FERNET_KEY, recorded_logs

CIPHER = ConfigCipher(FERNET_KEY)
REQUEST = ChatRequest(messages=[{"role": "user", "content": "hello"}], model="gpt-4o-mini")


def endpoint(fake, key: str | None = "sk-a", provider: str = "waddleai", url: str | None = None) -> CommunityEndpoint:
    return CommunityEndpoint(provider, url or fake.url, CIPHER.encrypt(key) if key else None)


def pool_for(max_size: int = 4, decrypt=CIPHER.decrypt) -> EndpointPool:
    return EndpointPool(make_settings(allowed_upstream_hosts="127.0.0.1"), max_size, decrypt)


def bearer(fake) -> list[str]:
    return [headers.get("authorization", "") for _, headers, _ in fake.chat_requests]


async def test_the_community_key_reaches_its_endpoint_and_one_client_serves_every_call(fake_openai):
    pool = pool_for()
    ep = endpoint(fake_openai, "sk-community-a")
    for _ in range(3):
        async with pool.lease(ep) as client:
            result = await client.provider.chat(REQUEST)
    assert result.text == fake_openai.reply and result.model == "gpt-4o-mini"
    assert bearer(fake_openai) == ["Bearer sk-community-a"] * 3
    assert len(pool.clients()) == 1 and fake_openai.connections == 1  # one long-lived client
    name = pool.clients()[0].name
    assert name.startswith(f"waddleai@127.0.0.1:{fake_openai.url.rsplit(':', 1)[1]}#")
    assert "sk-community" not in name and "sk-community" not in repr(ep)
    await pool.aclose()


async def test_the_set_is_bounded_and_the_least_recently_used_client_is_closed(fake_openai):
    pool = pool_for(max_size=2)
    a, b, c = (endpoint(fake_openai, key) for key in ("sk-a", "sk-b", "sk-c"))
    seen = {}
    for ep in (a, b, a, c):  # a used again: b is the least recently used when c arrives
        async with pool.lease(ep) as client:
            await client.provider.chat(REQUEST)
            seen[pool.name(ep)] = client
    assert [client.name for client in pool.clients()] == [pool.name(a), pool.name(c)]
    await async_wait_until(lambda: seen[pool.name(b)].closed, message="the evicted client closed")
    assert not seen[pool.name(a)].closed and not seen[pool.name(c)].closed
    await pool.aclose()
    assert all(client.closed for client in seen.values())


async def test_an_evicted_client_is_closed_only_after_its_call_finishes(fake_openai):
    pool = pool_for(max_size=1)
    a, b = endpoint(fake_openai, "sk-a"), endpoint(fake_openai, "sk-b")
    fake_openai.delay = 30  # every call waits until released
    lease_a = pool.lease(a)
    client_a = await lease_a.__aenter__()
    call = asyncio.create_task(client_a.provider.chat(REQUEST))
    await async_wait_until(lambda: fake_openai.calls == 1, message="the call reached the fake")
    async with pool.lease(b) as client_b:  # a is evicted while its call is in flight
        assert pool.clients() == [client_b]
        assert client_a.retired and not client_a.closed
    fake_openai.release()
    result = await call  # the call on the evicted client completes normally
    assert result.text == fake_openai.reply
    assert not client_a.closed  # still leased
    await lease_a.__aexit__(None, None, None)
    await async_wait_until(lambda: client_a.closed, message="the evicted client closed after its call")
    assert not client_b.closed
    await pool.aclose()
    assert client_b.closed


async def test_every_client_is_closed_at_shutdown_and_no_new_one_is_built(fake_openai):
    pool = pool_for()
    built = []
    for key in ("sk-a", "sk-b"):
        async with pool.lease(endpoint(fake_openai, key)) as client:
            await client.provider.chat(REQUEST)
            built.append(client)
    await pool.aclose()
    assert all(client.closed for client in built) and pool.clients() == []
    with pytest.raises(ProviderUnavailable, match="shutting down"):
        async with pool.lease(endpoint(fake_openai, "sk-c")):
            pass


async def test_a_client_unused_for_the_idle_time_is_closed(fake_openai):
    now = [1000.0]
    pool = EndpointPool(make_settings(allowed_upstream_hosts="127.0.0.1"), 8, CIPHER.decrypt,
                        clock=lambda: now[0])
    async with pool.lease(endpoint(fake_openai, "sk-old")) as old:
        pass
    now[0] += IDLE_CLOSE_S + 1
    async with pool.lease(endpoint(fake_openai, "sk-new")) as new:
        pass
    assert pool.clients() == [new]
    await async_wait_until(lambda: old.closed, message="the idle client closed")
    await pool.aclose()


async def test_a_new_key_gets_a_new_client(fake_openai):
    pool = pool_for()
    fake_openai.api_key = "sk-old"
    async with pool.lease(endpoint(fake_openai, "sk-old")) as old:
        await old.provider.chat(REQUEST)
    fake_openai.api_key = "sk-new"  # rotated at the upstream, then in the community's row
    async with pool.lease(endpoint(fake_openai, "sk-new")) as new:
        await new.provider.chat(REQUEST)
    assert new is not old and new.name != old.name
    assert bearer(fake_openai) == ["Bearer sk-old", "Bearer sk-new"]
    await pool.aclose()


OTHER_KEY = ConfigCipher(Fernet.generate_key().decode())


@pytest.mark.parametrize("url,token,decrypt,reason", [
    ("http://169.254.169.254/latest", None, CIPHER.decrypt, "metadata"),
    ("http://admin:hunter2@127.0.0.1:9/", None, CIPHER.decrypt, "credentials"),
    ("http://10.0.0.8:11434", None, CIPHER.decrypt, "private"),
    ("http://localhost:9", None, CIPHER.decrypt, "loopback"),  # resolved: only 127.0.0.1 is allowed
    ("{fake}", OTHER_KEY.encrypt("sk-x"), CIPHER.decrypt, "cannot be decrypted"),
    ("{fake}", CIPHER.encrypt("sk-x"), None, "CONFIG_ENCRYPTION_KEY is not set"),
])
async def test_an_endpoint_breaking_the_rules_is_refused_logged_once_and_never_called(
        fake_openai, url, token, decrypt, reason):
    pool = pool_for(decrypt=decrypt)
    ep = CommunityEndpoint("waddleai", url.format(fake=fake_openai.url), token)
    with recorded_logs(endpoints_module) as logs:
        for _ in range(3):
            with pytest.raises(ProviderUnavailable, match=reason):
                async with pool.lease(ep):
                    pass
    refused = [c for c in logs.calls if c[2].get("result") == "refused"]
    assert len(refused) == 1 and reason in refused[0][2]["error"]
    assert "hunter2" not in logs.text() and pool.clients() == [] and not pool.usable(ep)
    assert fake_openai.calls == 0
    await pool.aclose()


async def test_without_base_url_the_services_url_is_called_with_the_community_key(fake_openai):
    pool = EndpointPool(make_settings(openai=fake_openai, ai_provider="waddleai"), 4, CIPHER.decrypt)
    async with pool.lease(CommunityEndpoint("waddleai", None, CIPHER.encrypt("sk-own"))) as client:
        await client.provider.chat(REQUEST)
    assert bearer(fake_openai) == ["Bearer sk-own"]
    with pytest.raises(ProviderUnavailable, match="not configured on this service"):
        async with pool.lease(CommunityEndpoint("ollama", None, CIPHER.encrypt("sk-own"))):
            pass
    await pool.aclose()


async def test_community_calls_take_the_services_concurrency_slots(fake_openai, fake_ollama):
    settings = make_settings(ollama=fake_ollama, allowed_upstream_hosts="127.0.0.1")
    ollama = build_provider("ollama", settings)
    pool = EndpointPool(settings, 4, CIPHER.decrypt)
    llm = LLMService({"ollama": ollama}, {"ollama": CircuitBreaker("ollama")}, ProviderHealth({"ollama": ollama}, 60),
                     "ollama", None, max_concurrent=1, endpoints=pool)
    inflight = lambda: metrics.REGISTRY.get_sample_value("ai_inflight_provider_calls")  # noqa: E731
    before = inflight()
    fake_openai.delay = 30  # the community's call holds the only slot until released
    community = asyncio.create_task(llm.complete(llm.attempts(REQUEST, endpoint=endpoint(fake_openai))))
    await async_wait_until(lambda: fake_openai.calls == 1, message="the community call reached its endpoint")
    service = asyncio.create_task(llm.complete(llm.attempts(REQUEST)))
    for _ in range(5):  # let the service call run up to the slot
        await asyncio.sleep(0)
    assert inflight() == before + 1 and not service.done() and fake_ollama.calls == 0
    fake_openai.release()
    assert (await community).provider == "waddleai"
    assert (await service).provider == "ollama" and fake_ollama.calls == 1
    await pool.aclose()
    await ollama.aclose()
