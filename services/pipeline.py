"""Processing one accepted interaction, from trigger check to the reply posted (§3).

`Pipeline.process` returns exactly one outcome: replied, fallback, ignored, rate_limited, expired
or failed. It never raises for upstream failures; the worker counts and logs the outcome.

The work of a reply runs in loop turns (services/loop_turns.py), so that the ACKs arriving
meanwhile wait for one piece of background work at most, never for a burst of them: a triggered
interaction starts its LLM work (context, request) on its own turn, and posts its reply on its own
turn (the LLM's answer resumes on one too, in the transport). Chat that fires no trigger takes no
turn: its whole processing is smaller than waiting for one. Without these turns, the replies of
10 LLM answers arriving together (a lock-step LLM) ran back to back while ACKs waited; the
`ack_pending` runs before and after are in BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from config.settings import MODULE_NAME, Settings
from providers.base import ChatRequest, ProviderError
from services import metrics
from services.community_config import EffectiveConfig
from services.fallbacks import fallback_reply
from services.interaction import Interaction
from services.llm import LLMService
from services.logs import get_logger
from services.loop_turns import turns_of
from services.prompt import build_messages, user_turn
from services.rate_limits import ReplyRateLimiter
from services.reply_cleaning import clean_reply
from services.router_client import RouterClient
from services.triggers import matcher_for

log = get_logger(__name__)


@dataclass(slots=True)
class Reply:
    text: str
    provider: str | None
    model: str | None
    fallback: bool


class Pipeline:
    def __init__(self, settings: Settings, config_source: Any, context: Any,
                 limiter: ReplyRateLimiter, llm: LLMService, router: RouterClient, usage: Any = None) -> None:
        self.settings = settings
        self.usage = usage  # services/usage.py: MemoryUsage or storage/pg_usage.PgUsage
        self.config_source = config_source
        self.context = context
        self.limiter = limiter
        self.llm = llm
        self.router = router

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
        turns = turns_of(asyncio.get_running_loop())
        await turns.take()  # the LLM work starts on its own turn (chat that fires nothing never waits)
        key = (req.platform, req.entity_id, req.user_id)
        reply = await self._generate(interaction, cfg, trigger, key)
        if reply is None:
            return "failed", trigger
        await turns.take()
        delivered = await self.router.post_reply(
            self._payload(interaction, trigger, reply),
            interaction_id=interaction.id, request_id=interaction.request_id,
        )
        if not delivered:
            return "failed", trigger
        return ("fallback" if reply.fallback else "replied"), trigger

    async def _generate(self, interaction: Interaction, cfg: EffectiveConfig, trigger: str,
                        key: tuple[str, str, str]) -> Reply | None:
        req = interaction.request
        prefix = self.settings.response_prefix
        history = await self.context.history(key)
        messages = build_messages(req, trigger, history, cfg.system_prompt, prefix)
        request = ChatRequest(messages=messages, model=cfg.model, temperature=cfg.temperature,
                              max_tokens=cfg.max_tokens, request_id=interaction.request_id)
        reason = "provider_error"
        try:
            preferred = cfg.provider if cfg.provider in self.llm.providers else None
            result = await self.llm.complete(request, preferred=preferred)
            if self.usage is not None:
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
