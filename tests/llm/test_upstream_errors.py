"""The §8 error mapping of upstream answers (llm/types.py `status_error`), in one table, as real
proxies word them: "no such model" in any status is ModelNotFound; a refusal of OUR credentials or
headers is ProviderMisconfigured (counted, never the request's fault); a model's 429 is model-scoped."""

from __future__ import annotations

import pytest

from llm.types import ENDPOINT, MODEL, ModelNotFound, ProviderMisconfigured, status_error

LITELLM_UNKNOWN = ("/chat/completions: Invalid model name passed in model=nope. "
                   "Call `/v1/models` to view available models for your key.")
PORTKEY_MISSING = "Either x-portkey-config or x-portkey-provider header is required"

# (status, upstream words, code) → (class, kind, counts for a breaker, scope)
TABLE = [
    (400, LITELLM_UNKNOWN, "400", ModelNotFound, "not_found", False, MODEL),
    (404, "The model `nope` does not exist or you do not have access to it.", "model_not_found",
     ModelNotFound, "not_found", False, MODEL),
    (404, "The model `nope` does not exist.", "404", ModelNotFound, "not_found", False, MODEL),  # vLLM
    (404, 'model "nope" not found, try pulling it first', None, ModelNotFound, "not_found", False, MODEL),  # Ollama
    (400, "nope is not a valid model ID", None, ModelNotFound, "not_found", False, MODEL),  # OpenRouter
    (500, "The model `nope` does not exist", None, ModelNotFound, "not_found", False, MODEL),  # any status
    (404, "No endpoints found for model nope", None, ModelNotFound, "not_found", False, MODEL),
    (401, "Incorrect API key provided", "invalid_api_key", ProviderMisconfigured, "misconfigured", True, ENDPOINT),
    (403, "Forbidden", None, ProviderMisconfigured, "misconfigured", True, ENDPOINT),
    (401, "API Key not allowed to access model. This key can only access models=['a']", "401",
     ProviderMisconfigured, "misconfigured", True, MODEL),
    (400, PORTKEY_MISSING, None, ProviderMisconfigured, "misconfigured", True, ENDPOINT),
    (400, "Invalid provider passed", None, ProviderMisconfigured, "misconfigured", True, ENDPOINT),  # Portkey
    (400, "No connected db.", "400", ProviderMisconfigured, "misconfigured", True, ENDPOINT),  # LiteLLM, wrong key
    (404, 'Error code: 404 - {"detail": "Not Found"}', None, ProviderMisconfigured, "misconfigured", True,
     ENDPOINT),  # a bare 404: no API at our URL
    (429, "Rate limit reached for model-a", "rate_limit_exceeded", None, "bad_status", True, MODEL),
    (429, "You exceeded your current quota", "insufficient_quota", None, "bad_status", True, MODEL),
    (500, "internal error", None, None, "bad_status", True, ENDPOINT),
    (503, "overloaded", None, None, "bad_status", True, ENDPOINT),
    (408, "litellm.Timeout: This is a mock timeout error", "408", None, "bad_status", True, ENDPOINT),
    (400, "This model's maximum context length is 8192 tokens", "context_length_exceeded", None, "request",
     False, ENDPOINT),
    (422, "temperature must be at most 2", None, None, "request", False, ENDPOINT),
]


@pytest.mark.parametrize("status,words,code,cls,kind,counts,scope", TABLE)
def test_upstream_answers_are_classed(status, words, code, cls, kind, counts, scope):
    error = status_error("waddleai", status, f"waddleai answered {status}: {words}", "nope", code=code)
    if cls is not None:
        assert isinstance(error, cls)
    assert not isinstance(error, (ModelNotFound, ProviderMisconfigured)) or cls is not None
    assert (error.kind, error.counts_for_breaker, error.scope, error.provider) == (kind, counts, scope, "waddleai")
    if isinstance(error, ModelNotFound):
        assert error.model == "nope" and error.status == 404
    else:
        assert error.status == status
