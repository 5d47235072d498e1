"""Configuration: every variable documented, lists parsed, bad values named (§9)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import IsolatedSettings
from config.settings import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_dotenv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # .env is read from the working directory: there is none here


def test_env_example_lists_every_variable():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert {name.upper() for name in Settings.model_fields} == documented


def test_documented_defaults():
    s = IsolatedSettings()
    assert (s.module_port, s.ai_provider, s.ollama_model, s.waddleai_model) == (8005, "ollama", "llama3.2", "auto")
    assert (s.dedupe_window_s, s.max_body_bytes, s.max_message_chars, s.max_queue) == (300, 65536, 10000, 1000)
    assert (s.user_cooldown_s, s.channel_max_replies_per_min, s.context_history_limit) == (10, 20, 5)
    assert (s.request_timeout, s.max_concurrent_requests, s.interaction_max_age_s) == (30, 10, 120)
    assert (s.breaker_failure_threshold, s.breaker_reset_s, s.router_retry_max_s, s.shutdown_grace_s) == (5, 30, 30, 25)
    assert s.router_api_url is None and s.log_format == "auto"  # unset: replies printed on stdout (§6)
    assert (s.outbox_senders, s.outbox_max) == (4, 1000)
    assert s.platforms == ["twitch", "discord", "slack", "kick", "youtube"]
    assert (s.redis_url, s.redis_key_prefix, s.redis_timeout_s, s.redis_probe_s, s.redis_pool_max) == (None, "aim:", 0.2, 1, 50)


def test_comma_separated_lists_from_the_environment(monkeypatch):
    monkeypatch.setenv("PLATFORMS", "Twitch, discord ,")
    monkeypatch.setenv("VALID_API_KEYS", "k1,k2")
    monkeypatch.setenv("GREETING_TRIGGERS", "ahoy,good day")
    s = load_settings()
    assert s.platforms == ["twitch", "discord"]
    assert [k.get_secret_value() for k in s.valid_api_keys] == ["k1", "k2"]
    assert s.greeting_triggers == ["ahoy", "good day"]


@pytest.mark.parametrize("var,value", [
    ("OLLAMA_PORT", "eleven"), ("AI_PROVIDER", "skynet"), ("MAX_QUEUE", "0"),
    ("AI_TEMPERATURE", "3"), ("ROUTER_API_URL", "ftp://router"), ("RESPOND_WITH_FALLBACK", "perhaps"),
    ("ROUTER_PROTOCOL", "slack"), ("EXECUTE_TIMEOUT_S", "0"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"), ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "grpc://c:4317"),
    ("OTEL_SDK_DISABLED", "sometimes"), ("REDIS_URL", "http://redis:6379"),
    ("REDIS_TIMEOUT_S", "0"), ("REDIS_POOL_MAX", "0"), ("REDIS_KEY_PREFIX", ""),
    ("OUTBOX_SENDERS", "0"), ("OUTBOX_MAX", "none"),
])
def test_bad_value_names_the_variable(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert var in str(info.value)


def test_commands_are_named_without_prefix_or_case(monkeypatch):
    assert IsolatedSettings().commands == ["ai", "ask"]
    assert (IsolatedSettings().router_protocol, IsolatedSettings().execute_timeout_s) == ("contract", 25)
    monkeypatch.setenv("COMMANDS", "!AI, #Ask ,gpt,,!")
    assert load_settings().commands == ["ai", "ask", "gpt"]


def test_fallback_must_differ_from_primary(monkeypatch):
    monkeypatch.setenv("FALLBACK_PROVIDER", "ollama")
    with pytest.raises(ConfigError, match="FALLBACK_PROVIDER"):
        load_settings()


def test_summary_never_contains_secrets():
    s = IsolatedSettings(waddleai_api_key="sk-very-secret", router_api_key="router-secret",
                 valid_api_keys="open-ai-key-1", database_url="postgresql://u:pw-secret@h/db",
                 redis_url="redis://:redis-secret@redis:6379/0",
                 router_api_url="https://bot:url-secret@router.internal/api/v1/router")
    text = repr(s.summary())
    assert "https://***@router.internal/api/v1/router" in text
    assert s.summary()["redis_url"] == "set" and IsolatedSettings().summary()["redis_url"] == "unset"
    assert "redis://:redis-secret@redis:6379/0" in s.secret_values()
    for secret in ("sk-very-secret", "router-secret", "open-ai-key-1", "pw-secret", "url-secret", "redis-secret"):
        assert secret not in text


def test_otlp_headers_are_secrets_and_empty_otel_values_mean_unset(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-honeycomb-team=hc-very-secret")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    s = load_settings()
    assert "hc-very-secret" not in repr(s.summary()) and s.summary()["otel_exporter_otlp_headers"] == "set"
    assert "x-honeycomb-team=hc-very-secret" in s.secret_values()
    assert s.otel_exporter_otlp_endpoint is None and s.otel_service_name == "ai_interaction_module"


def test_extra_headers_are_a_json_object_of_secrets(monkeypatch):
    monkeypatch.setenv("WADDLEAI_EXTRA_HEADERS", '{"x-portkey-provider": "openai", "x-portkey-api-key": "pk-long-secret"}')
    s = load_settings()
    assert {k: v.get_secret_value() for k, v in s.waddleai_extra_headers.items()} == {
        "x-portkey-provider": "openai", "x-portkey-api-key": "pk-long-secret"}
    assert s.summary()["waddleai_extra_headers"] == ["x-portkey-api-key", "x-portkey-provider"]
    assert "pk-long-secret" not in repr(s.summary()) and "pk-long-secret" in s.secret_values()
    assert "openai" not in s.secret_values(), "a short value is no key: scrubbing it would blank the word in logs"
    monkeypatch.setenv("WADDLEAI_EXTRA_HEADERS", "")
    assert load_settings().waddleai_extra_headers == {}


@pytest.mark.parametrize("value,says", [
    ("{not json", "JSON object"), ('["x-a"]', "JSON object"), ('{"x-a": 1}', "'x-a'"),
    ('{"bad name": "v"}', "'bad name' is not a valid header name"), ('{"Host": "v"}', "'Host'"),
    ('{"x-a": "line\\nbreak"}', "one line"),
])
def test_bad_extra_headers_name_the_variable_not_the_value(monkeypatch, value, says):
    monkeypatch.setenv("WADDLEAI_EXTRA_HEADERS", value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "WADDLEAI_EXTRA_HEADERS" in str(info.value) and says in str(info.value)
    assert "line\nbreak" not in str(info.value)
