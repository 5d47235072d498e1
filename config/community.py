"""The configuration one interaction runs with: global settings, overridden per community (§7).

`source.effective(community_id)` returns an immutable `EffectiveConfig`: the settings, then the
global overrides (community 0, set by `PUT /api/v1/ai/config` without a community), then the
community's own. An override record is a dict of the columns of `ai_module_config`; a missing or
None value inherits, `triggers` is merged list by list. Where the overrides live (this process or
PostgreSQL) is storage/community_config.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from config.settings import DEFAULT_TRIGGER_LANGUAGES, Settings

OVERRIDABLE = (
    "provider", "model", "temperature", "max_tokens", "system_prompt",
    "user_cooldown_s", "channel_max_replies_per_min",
)
TRIGGER_FIELDS = ("bot_name", "greetings", "farewells", "question_marks", "event_types", "respond_to_events")
# Reply rules (§4, §3 step 12): the languages replace the inherited ones, the models per trigger
# are merged key by key, the blocklist adds to the inherited one.
RULES = ("trigger_languages", "model_by_trigger", "reply_blocklist")
COLUMNS = OVERRIDABLE + RULES + ("base_url", "api_key_encrypted")  # plus "triggers", a dict


@dataclass(frozen=True)
class TriggerConfig:
    bot_name: str = "waddlebot"
    greetings: tuple[str, ...] = (
        "hi", "hello", "hey", "heya", "hiya", "howdy", "greetings", "sup", "yo", "o7", "gm",
        "good morning", "good afternoon", "good evening",
    )
    farewells: tuple[str, ...] = (
        "bye", "goodbye", "cya", "see ya", "see you", "gtg", "gotta go", "good night", "gn",
        "!lurk",
    )
    question_marks: tuple[str, ...] = ("?",)
    event_types: frozenset[str] = frozenset(
        {"subscription", "follow", "donation", "cheer", "raid", "boost"}
    )
    respond_to_events: bool = True
    languages: tuple[str, ...] = DEFAULT_TRIGGER_LANGUAGES  # built-in vocabularies (interactions/vocabulary.py)

    @classmethod
    def from_settings(cls, settings: Any) -> "TriggerConfig":
        return cls(
            bot_name=settings.bot_name,
            greetings=tuple(settings.greeting_triggers),
            farewells=tuple(settings.farewell_triggers),
            question_marks=tuple(settings.question_triggers),
            event_types=frozenset(t.strip().lower() for t in settings.event_response_types),
            respond_to_events=bool(settings.respond_to_events),
            languages=tuple(code.strip().lower() for code in settings.trigger_languages),
        )


@dataclass(frozen=True, slots=True)
class CommunityEndpoint:
    """The LLM endpoint a community's calls go to first (llm/endpoints.py builds its client):
    its provider, its own `base_url` (None: the service's URL for that provider) and its api key
    as stored, encrypted (decrypted only to build the client). Never printed with the key."""

    provider: str
    base_url: str | None
    api_key_encrypted: str | None = field(default=None, repr=False)


def redact_url(url: str | None) -> str | None:
    """A URL as an endpoint may show it: credentials, query and fragment replaced by `***`.
    (Rows stored before `base_url` was validated may carry them.)"""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return "***"
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "",
                       "***" if parts.fragment else ""))


@dataclass(frozen=True, slots=True)
class EffectiveConfig:
    provider: str
    model: str | None  # None → the provider's default model
    temperature: float
    max_tokens: int
    system_prompt: str
    user_cooldown_s: float
    channel_max_replies_per_min: int
    triggers: TriggerConfig
    base_url: str | None = None  # the community's own endpoint (see `endpoint`)
    api_key_set: bool = False
    api_key_encrypted: str | None = field(default=None, repr=False)  # never shown (`public()`)

    @property
    def endpoint(self) -> CommunityEndpoint | None:
        """The community's own endpoint when it set a `base_url` or an api key, else None."""
        if self.base_url is None and self.api_key_encrypted is None:
            return None
        return CommunityEndpoint(self.provider, self.base_url, self.api_key_encrypted)
    model_by_trigger: dict[str, str] = field(default_factory=dict)  # trigger or event type → model
    reply_blocklist: tuple[str, ...] = ()

    def model_for(self, trigger: str, message_type: str = "") -> str | None:
        """MODEL_BY_TRIGGER: the event type's model, else the trigger's, else the configured model."""
        models = self.model_by_trigger
        kind = (message_type or "").strip().lower()
        if trigger == "event" and kind in models:
            return models[kind]
        return models.get(trigger, self.model)

    def public(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in OVERRIDABLE}
        out["base_url"] = redact_url(self.base_url)
        out["api_key_set"] = self.api_key_set
        out["trigger_languages"] = list(self.triggers.languages)
        out["model_by_trigger"] = dict(self.model_by_trigger)
        out["reply_blocklist"] = list(self.reply_blocklist)
        out["triggers"] = {
            "bot_name": self.triggers.bot_name,
            "greetings": list(self.triggers.greetings),
            "farewells": list(self.triggers.farewells),
            "question_marks": list(self.triggers.question_marks),
            "event_types": sorted(self.triggers.event_types),
            "respond_to_events": self.triggers.respond_to_events,
        }
        return out


def global_config(settings: Settings) -> EffectiveConfig:
    return EffectiveConfig(
        provider=settings.ai_provider,
        model=None,
        temperature=settings.ai_temperature,
        max_tokens=settings.ai_max_tokens,
        system_prompt=settings.system_prompt,
        user_cooldown_s=settings.user_cooldown_s,
        channel_max_replies_per_min=settings.channel_max_replies_per_min,
        triggers=TriggerConfig.from_settings(settings),
        model_by_trigger=dict(settings.model_by_trigger),
        reply_blocklist=tuple(settings.reply_blocklist),
    )


def _trigger_value(name: str, value: Any) -> Any:
    if name == "event_types":
        return frozenset(str(v).strip().lower() for v in value)
    if name in ("greetings", "farewells", "question_marks"):
        return tuple(str(v).strip() for v in value)
    return value


def apply_overrides(base: EffectiveConfig, overrides: dict[str, Any] | None) -> EffectiveConfig:
    """`base` with every set value of one override record applied."""
    if not overrides:
        return base
    changes: dict[str, Any] = {k: overrides[k] for k in OVERRIDABLE if overrides.get(k) is not None}
    if overrides.get("base_url") is not None:
        changes["base_url"] = overrides["base_url"]
    if overrides.get("api_key_encrypted"):
        changes["api_key_set"] = True
        changes["api_key_encrypted"] = overrides["api_key_encrypted"]
    triggers = {k: _trigger_value(k, v) for k, v in (overrides.get("triggers") or {}).items()
                if k in TRIGGER_FIELDS and v is not None}
    if overrides.get("trigger_languages") is not None:
        triggers["languages"] = tuple(str(v).strip().lower() for v in overrides["trigger_languages"])
    if triggers:
        changes["triggers"] = replace(base.triggers, **triggers)
    if overrides.get("model_by_trigger"):
        changes["model_by_trigger"] = {**base.model_by_trigger, **overrides["model_by_trigger"]}
    if overrides.get("reply_blocklist"):
        changes["reply_blocklist"] = tuple(dict.fromkeys(base.reply_blocklist + tuple(overrides["reply_blocklist"])))
    return replace(base, **changes) if changes else base


def merge_overrides(current: dict[str, Any] | None, changes: dict[str, Any]) -> dict[str, Any]:
    """A new override record: `changes` on top of `current`; None removes a value (inherit again)."""
    merged = {k: v for k, v in (current or {}).items() if k in COLUMNS and v is not None}
    triggers = dict((current or {}).get("triggers") or {})
    for key, value in changes.items():
        if key == "triggers":
            if value is None:
                triggers = {}
            else:
                triggers.update(value)
        elif key in COLUMNS:
            merged[key] = value
    triggers = {k: v for k, v in triggers.items() if k in TRIGGER_FIELDS and v is not None}
    if triggers:
        merged["triggers"] = triggers
    return {k: v for k, v in merged.items() if v is not None}


def shown(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """An override record as an endpoint may show it: the encrypted key becomes `api_key_set`,
    the `base_url` shows no credentials."""
    record = {k: v for k, v in (overrides or {}).items() if k != "api_key_encrypted"}
    if record.get("base_url"):
        record["base_url"] = redact_url(record["base_url"])
    record["api_key_set"] = bool((overrides or {}).get("api_key_encrypted"))
    return record

