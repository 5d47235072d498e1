"""GET …/models and …/models/{id}, the model catalog cache, the per-key limiter, /openapi.json."""

from __future__ import annotations

import asyncio

import openai
import pytest

from completions.limits import KeyRateLimiter, key_id
from completions.catalog import ModelCatalog
from tests.support import make_settings, running_app
from tests.waiting import async_wait_until, wait_until

KEY = "test-key"


def client(app, prefix: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=app.url + prefix, api_key=KEY, max_retries=0)


def tags_calls(fake) -> int:
    return sum(1 for path, _, _ in fake.requests if path == "/api/tags")


@pytest.fixture
def app(fake_ollama):
    fake_ollama.models = ["llama3.2:latest", "mistral:7b"]
    with running_app(make_settings(ollama=fake_ollama, valid_api_keys=KEY)) as handle:
        wait_until(lambda: handle.runtime.health.status("ollama") is not None)  # start-up probe done
        yield handle


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1/ai"])
def test_models_list_in_openai_shape(app, prefix):
    response = app.http.get(f"{prefix}/models", headers={"Authorization": f"Bearer {KEY}"})
    body = response.json()
    assert response.status_code == 200 and body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["llama3.2", "llama3.2:latest", "mistral:7b"]
    for model in body["data"]:
        assert set(model) == {"id", "object", "created", "owned_by"}
        assert model["object"] == "model" and model["owned_by"] == "ollama" and isinstance(model["created"], int)
    with client(app, prefix) as sdk:
        assert [m.id for m in sdk.models.list()] == ["llama3.2", "llama3.2:latest", "mistral:7b"]


def test_models_are_cached(app, fake_ollama):
    before = tags_calls(fake_ollama)
    with client(app) as sdk:
        for _ in range(3):
            sdk.models.list()
    assert tags_calls(fake_ollama) == before + 1


def test_unreachable_provider_still_lists_the_default_model(fake_ollama):
    fake_ollama.healthy = False
    with running_app(make_settings(ollama=fake_ollama, valid_api_keys=KEY)) as app, client(app) as sdk:
        assert [m.id for m in sdk.models.list()] == ["llama3.2"]


def test_both_providers_are_listed_defaults_first(fake_ollama, fake_openai):
    settings = make_settings(ollama=fake_ollama, openai=fake_openai, fallback_provider="waddleai",
                             valid_api_keys=KEY)
    with running_app(settings) as app, client(app) as sdk:
        models = {m.id: m.owned_by for m in sdk.models.list()}
    assert list(models)[:2] == ["llama3.2", "auto"]
    assert models == {"llama3.2": "ollama", "auto": "waddleai", "llama3.2:latest": "ollama",
                      "gpt-4o-mini": "waddleai"}


def test_retrieve_one_model(app):
    with client(app) as sdk:
        assert sdk.models.retrieve("mistral:7b").owned_by == "ollama"
        assert sdk.models.retrieve("llama3.2").id == "llama3.2"
        assert sdk.models.retrieve("ollama/mistral:7b").id == "ollama/mistral:7b"
        with pytest.raises(openai.NotFoundError) as caught:
            sdk.models.retrieve("gpt-17")
    assert caught.value.code == "model_not_found"


async def test_async_models(app):
    async with openai.AsyncOpenAI(base_url=app.url + "/api/v1/ai", api_key=KEY, max_retries=0) as sdk:
        page = await sdk.models.list()
    assert "mistral:7b" in [m.id for m in page.data]


def test_openapi_documents_both_prefixes(app):
    paths = app.http.get("/openapi.json").json()["paths"]
    for prefix in ("/v1", "/api/v1/ai"):
        assert "post" in paths[f"{prefix}/chat/completions"]
        assert "get" in paths[f"{prefix}/models"] and f"{prefix}/models/{{model_id}}" in paths
        assert not any(p.startswith(f"{prefix}/{{") for p in paths)  # the catch-all is hidden
    assert "requestBody" in paths["/v1/chat/completions"]["post"]


def test_openapi_documents_every_status_of_a_completion(app):
    responses = app.http.get("/openapi.json").json()["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"200", "400", "401", "404", "413", "429", "500", "502", "503"} <= set(responses)
    assert "upstream_misconfigured" in responses["502"]["description"]
    assert "model_unavailable" in responses["503"]["description"]
    assert "unknown_parameter" in responses["400"]["description"]
    assert "unsupported_parameter" in responses["400"]["description"]


# --- the catalog on its own: a provider whose listing hangs --------------------------------------------
class HangingProvider:
    def __init__(self, name: str, default_model: str) -> None:
        self.name, self.default_model = name, default_model
        self.calls = 0
        self.release = asyncio.Event()

    async def list_models(self) -> list[str]:
        self.calls += 1
        await self.release.wait()
        return ["late-model"]


class StubLLM:
    def __init__(self, *providers: HangingProvider) -> None:
        self.providers = {p.name: p for p in providers}

    def order(self, preferred: str | None = None) -> list[str]:
        return list(self.providers)

    def usable(self, name: str) -> bool:
        return True


async def test_a_hung_listing_blocks_nobody_longer_than_the_fetch_timeout():
    provider = HangingProvider("ollama", "llama3.2")
    llm = StubLLM(provider)
    catalog = ModelCatalog(fetch_timeout_s=0.05)
    try:
        first, second = await asyncio.gather(catalog.entries(llm), catalog.entries(llm))
        assert [e.id for e in first] == [e.id for e in second] == ["llama3.2"]
        assert provider.calls == 1  # one fetch shared, still running in the background
        provider.release.set()
        await async_wait_until(lambda: catalog._tasks["ollama"].done())
        assert [e.id for e in await catalog.entries(llm)] == ["llama3.2", "late-model"]
        assert provider.calls == 1  # fresh now: cached
    finally:
        await catalog.aclose()


async def test_catalog_close_cancels_a_pending_fetch():
    provider = HangingProvider("ollama", "llama3.2")
    catalog = ModelCatalog(fetch_timeout_s=0.01)
    await catalog.entries(StubLLM(provider))
    task = catalog._tasks["ollama"]
    await catalog.aclose()
    assert task.cancelled()


# --- the per-key limiter ---------------------------------------------------------------------------
def test_token_bucket_per_key():
    now = [1000.0]
    limiter = KeyRateLimiter(2, clock=lambda: now[0])
    a, b = key_id("key-a"), key_id("key-b")
    assert [limiter.check(a).allowed for _ in range(2)] == [True, True]
    refused = limiter.check(a)
    assert not refused.allowed and refused.retry_after_s == 30 and refused.limit == 2
    assert limiter.check(b).allowed
    now[0] += 30
    assert limiter.check(a).allowed and not limiter.check(a).allowed


def test_zero_rate_is_unlimited_and_keys_are_hashed():
    limiter = KeyRateLimiter(0)
    assert all(limiter.check("k").allowed for _ in range(1000))
    assert "secret-key" not in key_id("secret-key") and len(key_id("secret-key")) == 16
    assert key_id("secret-key") == key_id("secret-key") != key_id("secret-kez")
