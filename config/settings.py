"""Every variable (docs/configuration.md), read from the environment (and an optional `.env`).

A bad value stops start-up with a message naming the variable (see `load_settings`).
List variables are comma-separated (`PLATFORMS=twitch,discord`).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from config import reply_rules

VERSION = "1.0.0"
MODULE_NAME = "ai_interaction_module"

CsvList = Annotated[list[str], NoDecode]
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
ProviderName = Literal["ollama", "waddleai"]
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP token (RFC 9110)
MIN_SCRUBBED_HEADER_VALUE = 8
_TRANSPORT_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "content-type"}
# Languages with built-in greeting and farewell words (interactions/vocabulary.py).
TRIGGER_LANGUAGE_CODES = ("en", "es", "pt", "fr", "de", "it", "ru", "ja", "ko", "zh")
DEFAULT_TRIGGER_LANGUAGES = TRIGGER_LANGUAGE_CODES

DEFAULT_SYSTEM_PROMPT = (
    "You are WaddleBot, a friendly, upbeat assistant in a live-stream chat. "
    "Answer briefly and kindly, in one or two sentences, in the language of the viewer. "
    "Never claim to be a human."
)


def command_name(command: str) -> str:
    """A chat command without its `!` or `#` prefix, case-folded: `!AI` → `ai`."""
    command = command.strip()
    if command[:1] in ("!", "#"):
        command = command[1:]
    return command.strip().casefold()


class ConfigError(SystemExit):
    """Start-up configuration error; the message names each bad variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- server -----------------------------------------------------------------------
    module_port: int = Field(8005, ge=1, le=65535)
    module_host: str = "0.0.0.0"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"  # auto: console on a terminal, else JSON
    user_hash_salt: SecretStr = SecretStr("waddlebot")

    # --- inbound interaction (§2) --------------------------------------------------------
    router_service_key: SecretStr | None = None
    platforms: CsvList = ["twitch", "discord", "slack", "kick", "youtube"]
    max_message_chars: int = Field(10000, ge=1)
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    dedupe_window_s: float = Field(300, ge=0)
    max_queue: int = Field(1000, ge=1)
    worker_count: int = Field(32, ge=1, le=1024)

    # --- processing (§3) -----------------------------------------------------------------
    user_cooldown_s: float = Field(10, ge=0)
    channel_max_replies_per_min: int = Field(20, ge=0)
    context_history_limit: int = Field(5, ge=0, le=100)
    context_ttl_s: float = Field(1800, gt=0)
    context_max_conversations: int = Field(10000, ge=1)
    request_timeout: float = Field(30, gt=0)
    max_concurrent_requests: int = Field(10, ge=1)
    interaction_max_age_s: float = Field(120, gt=0)
    respond_with_fallback: bool = True
    response_prefix: str = "🤖 "
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    ai_temperature: float = Field(0.7, ge=0, le=2)
    ai_max_tokens: int = Field(150, ge=1, le=32768)

    # --- triggers (§4) -------------------------------------------------------------------
    bot_name: str = Field("waddlebot", min_length=1)
    greeting_triggers: CsvList = [
        "hi", "hello", "hey", "heya", "hiya", "howdy", "greetings", "sup", "yo", "o7", "gm",
        "good morning", "good afternoon", "good evening",
    ]
    farewell_triggers: CsvList = [
        "bye", "goodbye", "cya", "see ya", "see you", "gtg", "gotta go", "good night", "gn", "!lurk",
    ]
    question_triggers: CsvList = ["?"]
    trigger_languages: CsvList = list(DEFAULT_TRIGGER_LANGUAGES)
    model_by_trigger: Annotated[dict[str, str], NoDecode] = {}
    reply_blocklist: Annotated[list[str], NoDecode] = []
    respond_to_events: bool = True
    event_response_types: CsvList = ["subscription", "follow", "donation", "cheer", "raid", "boost"]

    # --- providers (§5) -------------------------------------------------------------------
    ai_provider: ProviderName = "ollama"
    fallback_provider: ProviderName | None = None
    ollama_host: str = "localhost"
    ollama_port: int = Field(11434, ge=1, le=65535)
    ollama_use_tls: bool = False
    ollama_cert_path: str | None = None
    ollama_verify_ssl: bool = True
    ollama_model: str = "llama3.2"
    waddleai_base_url: str = "http://waddleai-proxy:8000"
    waddleai_api_key: SecretStr | None = None
    waddleai_model: str = "auto"
    waddleai_preferred_model: str | None = None
    # a JSON object of headers for every WaddleAI call (Portkey: x-portkey-provider); values are secrets
    waddleai_extra_headers: Annotated[dict[str, SecretStr], NoDecode] = {}
    breaker_failure_threshold: int = Field(5, ge=1)
    breaker_reset_s: float = Field(30, gt=0)
    health_check_interval_s: float = Field(15, gt=0)
    allowed_upstream_hosts: CsvList = []  # hosts a community's base_url may name despite the address rules
    community_endpoints_max: int = Field(32, ge=1)  # long-lived clients of community endpoints kept

    # --- router (§6) ----------------------------------------------------------------------
    router_api_url: str | None = None  # unset: replies are printed on stdout (router/console.py)
    router_api_key: SecretStr | None = None
    router_retry_max_s: float = Field(30, ge=0)
    router_timeout_s: float = Field(10, gt=0)
    router_protocol: Literal["contract", "waddlebot"] = "contract"
    outbox_senders: int = Field(4, ge=1, le=256)  # tasks posting replies, apart from the workers
    outbox_max: int = Field(1000, ge=1)  # undelivered replies one instance holds; beyond: overflow

    # --- WaddleBot module SDK: POST /api/v1/execute (§11) -------------------------------------
    commands: CsvList = ["ai", "ask"]
    execute_timeout_s: float = Field(25, gt=0)

    # --- storage (§1, §7) ------------------------------------------------------------------
    database_url: SecretStr | None = None
    config_encryption_key: SecretStr | None = None
    config_cache_ttl_s: float = Field(10, ge=0)
    db_pool_min: int = Field(1, ge=0, le=100)
    db_pool_max: int = Field(10, ge=1, le=100)
    db_timeout_s: float = Field(5, gt=0)
    queue_lease_s: float = Field(30, gt=0)
    queue_poll_s: float = Field(1, gt=0)
    queue_retention_s: float = Field(86400, ge=0)

    # --- shared state of several replicas: Redis (§1, §12) -------------------------------------
    redis_url: SecretStr | None = None
    redis_key_prefix: str = Field("aim:", min_length=1, max_length=64)
    redis_timeout_s: float = Field(0.2, gt=0, le=10)  # bounds every Redis call (docs/design.md)
    redis_probe_s: float = Field(1, gt=0)
    redis_pool_max: int = Field(50, ge=1, le=1000)

    # --- OpenAI-compatible API (§8) ---------------------------------------------------------
    valid_api_keys: Annotated[list[SecretStr], NoDecode] = []
    completions_rate_per_min: int = Field(60, ge=0)
    max_completion_messages: int = Field(100, ge=1)

    # --- operations (§9) -------------------------------------------------------------------
    admin_api_keys: Annotated[list[SecretStr], NoDecode] = []
    shutdown_grace_s: float = Field(25, ge=0)

    # --- tracing (§12): OpenTelemetry's standard variables (observability/tracing.py) ----------------
    otel_exporter_otlp_endpoint: str | None = None  # the collector's root; spans go to <root>/v1/traces
    otel_exporter_otlp_traces_endpoint: str | None = None  # the full URL for spans, as given
    otel_exporter_otlp_headers: SecretStr | None = None  # k=v,k2=v2 (often a vendor's API key)
    otel_exporter_otlp_traces_headers: SecretStr | None = None
    otel_service_name: str = Field(MODULE_NAME, min_length=1)
    otel_sdk_disabled: bool = False

    @field_validator(
        "platforms", "greeting_triggers", "farewell_triggers", "question_triggers",
        "event_response_types", "allowed_upstream_hosts", "trigger_languages", mode="before",
    )
    @classmethod
    def _split_lower(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trigger_languages")
    @classmethod
    def _known_languages(cls, value: list[str]) -> list[str]:
        unknown = [code for code in value if code not in TRIGGER_LANGUAGE_CODES]
        if unknown:
            raise ValueError(f"unknown language {', '.join(unknown)}; known: {', '.join(TRIGGER_LANGUAGE_CODES)}")
        return value

    @field_validator("model_by_trigger", mode="before")
    @classmethod
    def _model_by_trigger(cls, value: object) -> object:
        return reply_rules.model_by_trigger(value)

    @field_validator("reply_blocklist", mode="before")
    @classmethod
    def _blocklist(cls, value: object) -> object:
        return list(reply_rules.blocklist_entries(reply_rules.split_entries(value)))

    @field_validator("commands", mode="before")
    @classmethod
    def _command_names(cls, value: object) -> object:
        """`!ai`, `#AI` and `ai` all name the command `ai` (the router sends it with its prefix)."""
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):
            return [command_name(str(part)) for part in value if command_name(str(part))]
        return value

    @field_validator("valid_api_keys", "admin_api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator(
        "fallback_provider", "router_service_key", "router_api_key", "waddleai_api_key",
        "database_url", "config_encryption_key", "ollama_cert_path", "waddleai_preferred_model",
        "otel_exporter_otlp_endpoint", "otel_exporter_otlp_traces_endpoint", "otel_exporter_otlp_headers",
        "otel_exporter_otlp_traces_headers", "redis_url", "router_api_url", mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("waddleai_extra_headers", mode="before")
    @classmethod
    def _headers_object(cls, value: object) -> object:
        """A JSON object of header name → string value; the message never repeats a value."""
        if isinstance(value, str):
            if not value.strip():
                return {}
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(f"must be a JSON object of header names to values ({exc})") from None
        if not isinstance(value, dict):
            raise ValueError('must be a JSON object, e.g. {"x-portkey-provider": "openai"}')
        for name, item in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in _TRANSPORT_HEADERS:
                raise ValueError(f"{name!r} is set by the HTTP client and cannot be overridden")
            text = item.get_secret_value() if isinstance(item, SecretStr) else item
            if not isinstance(text, str) or any(c in text for c in "\r\n\0"):
                raise ValueError(f"the value of {name!r} must be a string on one line")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("router_api_url", "waddleai_base_url", "otel_exporter_otlp_endpoint",
                     "otel_exporter_otlp_traces_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _coherent(self) -> "Settings":
        if self.fallback_provider == self.ai_provider:
            raise ValueError("FALLBACK_PROVIDER must differ from AI_PROVIDER")
        if not self.platforms:
            raise ValueError("PLATFORMS must name at least one platform")
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("DB_POOL_MIN must not exceed DB_POOL_MAX")
        return self

    # --- derived ---------------------------------------------------------------------------
    @property
    def ollama_url(self) -> str:
        scheme = "https" if self.ollama_use_tls else "http"
        return f"{scheme}://{self.ollama_host}:{self.ollama_port}"

    def secret_values(self) -> list[str]:
        """Every secret configured, so log/error scrubbing and tests can check for them."""
        found: list[str] = []
        for value in self.__dict__.values():
            items = value if isinstance(value, list) else [value]
            if isinstance(value, dict):  # WADDLEAI_EXTRA_HEADERS: a value as short as "openai" is no
                # key, and scrubbing it would blank that word in every log line (MODEL_BY_TRIGGER: no secrets)
                items = [v for v in value.values()
                         if isinstance(v, SecretStr) and len(v.get_secret_value()) >= MIN_SCRUBBED_HEADER_VALUE]
            found += [v.get_secret_value() for v in items if isinstance(v, SecretStr)]
        return [v for v in found if v]

    def summary(self) -> dict[str, object]:
        """Configuration for the start-up log: secrets only say whether they are set."""
        out: dict[str, object] = {}
        for name, value in self.__dict__.items():
            if isinstance(value, SecretStr) or (
                isinstance(value, list) and value and isinstance(value[0], SecretStr)
            ):
                out[name] = "set" if value else "unset"
            elif name == "model_by_trigger":
                out[name] = value
            elif isinstance(value, dict):
                out[name] = sorted(value)  # header names only: their values may be keys
            elif name == "reply_blocklist":
                out[name] = f"{len(value)} entries"  # the forbidden words stay out of the logs
            elif value is None and name in {"router_service_key", "database_url", "redis_url"}:
                out[name] = "unset"
            elif isinstance(value, str) and "://" in value:
                out[name] = _URL_USERINFO.sub("***@", value)  # credentials inside a URL
            elif name != "system_prompt":
                out[name] = value
        return out


def load_settings(**overrides: object) -> Settings:
    """Build settings; on a bad value raise ConfigError naming every bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            var = "_".join(str(p) for p in err["loc"]).upper() or "configuration"
            lines.append(f"  {var}: {err['msg']}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None
