"""Whether and how to answer one accepted interaction (§3): the whole decision, in order.

    expired?      older than INTERACTION_MAX_AGE_S         → expired
    trigger?      mention, greeting, farewell, question, event (interactions/triggers.py)
                  none                                      → ignored
    rate limit?   user cooldown, channel replies per minute → rate_limited
    generate      context + prompt → LLM (breaker, failover); on failure the canned fallback,
                  or nothing when RESPOND_WITH_FALLBACK=false → failed
    clean         trim, drop a leaked prompt, neutralise mass pings, cut at the platform's limit
    post          to the router (retried there)             → replied | fallback, else failed

`ReplyPipeline.process` returns exactly one outcome with the trigger that fired. It never raises
for upstream failures; the worker (interactions/workers.py) counts and logs the outcome.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from config.community import EffectiveConfig
from config.settings import MODULE_NAME, Settings
from interactions.cleaning import clean_reply
from interactions.fallbacks import fallback_reply
from interactions.model import Interaction
from interactions.prompt import build_messages, user_turn
from interactions.rate_limits import ReplyRateLimiter
from interactions.triggers import matcher_for
from llm.service import LLMService
from llm.types import ChatRequest, ProviderError
from observability import metrics
from observability.logs import get_logger
from router.client import RouterClient
from storage.community_config import ConfigSource
from storage.context import ContextStore, ConversationKey
from storage.usage import UsageStore

log = get_logger(__name__)


@dataclass(slots=True)
class Reply:
    text: str
    provider: str | None
    model: str | None
    fallback: bool


class ReplyPipeline:
    def __init__(self, settings: Settings, config_source: ConfigSource, context: ContextStore,
                 limiter: ReplyRateLimiter, llm: LLMService, router: RouterClient, usage: UsageStore) -> None:
        self.settings = settings
        self.config_source = config_source
        self.context = context
        self.limiter = limiter
        self.llm = llm
        self.router = router
        self.usage = usage

    async def process(self, interaction: Interaction) -> tuple[str, str]:
        """Returns (outcome, trigger); trigger is "none" when nothing fired."""
        req = interaction.request
        if interaction.age_s > self.settings.interaction_max_age_s:
            return "expired", "none"
        cfg = await self.config_source.effective(req.community_id)
        trigger = matcher_for(cfg.triggers).detect(req.message_content, req.message_type, req.username)
        if trigger is None:
            return "ignored", "none"
        if self.limiter.try_acquire(req.platform, req.entity_id, req.user_id,
                                    cfg.user_cooldown_s, cfg.channel_max_replies_per_min):
            return "rate_limited", trigger
        key = (req.platform, req.entity_id, req.user_id)
        reply = await self._generate(interaction, cfg, trigger, key)
        if reply is None:
            return "failed", trigger
        delivered = await self.router.post_reply(
            self._payload(interaction, trigger, reply),
            interaction_id=interaction.id, request_id=interaction.request_id,
        )
        if not delivered:
            return "failed", trigger
        return ("fallback" if reply.fallback else "replied"), trigger

    async def _generate(self, interaction: Interaction, cfg: EffectiveConfig, trigger: str,
                        key: ConversationKey) -> Reply | None:
        """The LLM's cleaned reply, else the canned fallback (None when fallbacks are off)."""
        req = interaction.request
        prefix = self.settings.response_prefix
        history = await self.context.history(key)
        messages = build_messages(req, trigger, history, cfg.system_prompt, prefix)
        request = ChatRequest(messages=messages, model=cfg.model, temperature=cfg.temperature,
                              max_tokens=cfg.max_tokens, request_id=interaction.request_id)
        reason = "provider_error"
        try:
            preferred = cfg.provider if cfg.provider in self.llm.providers else None
            result = await self.llm.complete(self.llm.attempts(request, preferred, cfg.endpoint))
            await self.usage.record(req.community_id, result.provider, result.model,
                                    result.prompt_tokens, result.completion_tokens)
            text = clean_reply(result.text, platform=req.platform, prefix=prefix,
                               system_prompt=cfg.system_prompt, bot_name=cfg.triggers.bot_name)
            if text is not None:
                await self.context.append(key, user_turn(req, trigger), text[len(prefix):])
                return Reply(text, result.provider, result.model, fallback=False)
            reason = "empty_reply"
        except ProviderError as exc:
            reason = "breaker_open" if exc.kind == "unavailable" else f"provider_{exc.kind}"
            log.warning("provider call failed", action="generate", interaction_id=interaction.id,
                        provider=exc.provider, result=exc.kind, error=str(exc)[:200])
        if not self.settings.respond_with_fallback:
            return None
        metrics.fallbacks_total.labels(reason=reason).inc()
        canned = fallback_reply(trigger, req.message_type, req.display)
        text = clean_reply(canned, platform=req.platform, prefix=prefix)
        return Reply(text or prefix + canned, None, None, fallback=True)

    def _payload(self, interaction: Interaction, trigger: str, reply: Reply) -> dict[str, Any]:
        """The reply body posted to the router (§6)."""
        req = interaction.request
        return {
            "session_id": req.session_id,
            "interaction_id": interaction.id,
            "execution_id": req.execution_id,
            "module_name": MODULE_NAME,
            "success": True,
            "response_action": "chat",
            "response_data": {
                "message": reply.text,
                "trigger_type": trigger,
                "provider": reply.provider,
                "model": reply.model,
                "fallback": reply.fallback,
            },
            "chat_message": reply.text,
            "platform": req.platform,
            "entity_id": req.entity_id,
            "channel_id": req.channel_id,
            "user_id": req.user_id,
            "metadata": req.metadata,
            "processing_time_ms": int((time.time() - interaction.accepted_at) * 1000),
        }
