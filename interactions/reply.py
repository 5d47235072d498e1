"""Whether and how to answer (§3, §11): one decision, two entry points.

    process(interaction)  a queued interaction (POST /api/v1/ai/interaction): the reply goes to the
                          outbox (interactions/outbox/), which posts it to the router in the shape
                          ROUTER_PROTOCOL names (router/bodies.py)
    answer(interaction)   a chat command (POST /api/v1/execute, interactions/commands.py): the reply
                          is returned inline, within the command's deadline

Both run the same steps, in order:

    expired?      (queued only) older than INTERACTION_MAX_AGE_S → expired
    trigger?      (queued only) mention, greeting, farewell, question, event (interactions/triggers.py);
                  none → ignored. A command is its own trigger: `command`.
    rate limit?   user cooldown, channel replies per minute (one limiter for both) → rate_limited
    generate      context + prompt → LLM (breaker, failover, usage; a command waits only until its
                  deadline); on failure the canned fallback, or nothing when
                  RESPOND_WITH_FALLBACK=false → failed
    clean         trim, drop a leaked prompt, neutralise mass pings, cut at the platform's limit
    deliver       hand it to the outbox (a queued interaction) / return it (a command)
    remember      only once delivered, and only an LLM reply: the exchange goes into the context
                  (for a queued interaction the outbox calls `remember` after the router's 2xx)

`process` returns the outcome, the trigger that fired and, when there is a reply to post, the
`PendingReply` for the outbox; it never raises for upstream failures. The worker
(interactions/workers.py) counts and logs an outcome without a reply; the outbox the others, once
it is done with the reply (delivered: this outcome; else `failed` or `expired`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from config.community import EffectiveConfig
from config.settings import Settings
from interactions.cleaning import clean_reply
from interactions.fallbacks import fallback_reply
from interactions.moderation import blocklist_for
from interactions.model import Interaction, InteractionRequest
from interactions.outbox.pending import PendingReply
from interactions.prompt import build_messages, user_turn
from interactions.rate_limits import ReplyLimits
from interactions.stragglers import Stragglers
from interactions.triggers import TriggerMatch, matcher_for
from llm.service import LLMService
from llm.types import ChatRequest, ChatResult, ProviderError
from observability import metrics, tracing
from observability.logs import get_logger
from router.bodies import OutgoingReply, body_builder
from storage.community_config import ConfigSource
from storage.context import ContextStore, ConversationKey
from storage.usage import UsageStore

log = get_logger(__name__)

COMMAND_TRIGGER = "command"  # the trigger of a command answered inline (§11)


@dataclass(slots=True)
class Reply:
    text: str
    provider: str | None
    model: str | None
    fallback: bool
    # (the viewer's turn, the reply without prefix): remembered once delivered; None for canned replies
    exchange: tuple[str, str] | None = None
    moderated: bool = False  # the LLM's reply hit the blocklist: the canned one (or, text "", none) instead

    @property
    def outcome(self) -> str:
        return "moderated" if self.moderated else "fallback" if self.fallback else "replied"


@dataclass(slots=True)
class Answer:
    """What `answer` decided: the outcome, the reply to return, the scope that refused (rate_limited)."""

    outcome: str
    reply: Reply | None = None
    limited_by: str | None = None


@dataclass(frozen=True, slots=True)
class TriggerCheck:
    """The dry run's answer: the match, the model a reply would ask for (None: the configured one),
    and the languages the community's triggers know."""

    match: TriggerMatch
    model: str | None
    languages: tuple[str, ...]


def conversation_key(req: InteractionRequest) -> ConversationKey:
    return req.platform, req.entity_id, req.user_id


class ReplyPipeline:
    def __init__(self, settings: Settings, config_source: ConfigSource, context: ContextStore,
                 limiter: ReplyLimits, llm: LLMService, usage: UsageStore) -> None:
        self.settings = settings
        self.config_source = config_source
        self.context = context
        self.limiter = limiter
        self.llm = llm
        self.usage = usage
        self.stragglers = Stragglers(settings.max_concurrent_requests)
        # the console (ROUTER_API_URL unset) prints from the contract body: it names the trigger and fallback
        self.reply_body = body_builder(settings.router_protocol if settings.router_api_url else "contract")

    async def aclose(self) -> None:
        """At shutdown, after the workers stopped: end the provider calls still running late."""
        await self.stragglers.aclose()

    # --- entry point 1: a queued interaction, replied to through the router --------------------
    async def process(self, interaction: Interaction) -> tuple[str, str, PendingReply | None]:
        """Returns (outcome, trigger, reply for the outbox); trigger is "none" when nothing fired.
        With a reply, the outcome is the one it ends with once the router accepted it."""
        req = interaction.request
        with tracing.span("interaction.decide") as decision:  # the trace's step (interactions/spans.py)
            if interaction.age_s > self.settings.interaction_max_age_s:
                return "expired", "none", None
            cfg = await self.config_source.effective(req.community_id)
            found = matcher_for(cfg.triggers).match(req.message_content, req.message_type, req.username)
            trigger = found.trigger
            tracing.set_attributes({"interaction.trigger": trigger or "none"}, decision)
            if trigger is None:
                return "ignored", "none", None
            if await self._rate_limited(req, cfg):
                return "rate_limited", trigger, None
        reply = await self._generate(interaction, cfg, trigger, language=found.language)
        if reply is None:
            return "failed", trigger, None
        if not reply.text:  # moderated, and no canned reply may go instead
            return reply.outcome, trigger, None
        body = self.reply_body(self._outgoing(interaction, trigger, reply))
        return reply.outcome, trigger, PendingReply(interaction, trigger, reply.outcome, body, reply.exchange)

    async def remember(self, interaction: Interaction, exchange: tuple[str, str]) -> None:
        """Once the router accepted an LLM reply: the viewer's turn and the reply join the context
        (§3 step 10; the outbox calls it after the 2xx)."""
        await self.context.append(conversation_key(interaction.request), *exchange)

    # --- entry point 2: a chat command, answered inline -------------------------------------------
    async def answer(self, interaction: Interaction, deadline: float, trigger: str = COMMAND_TRIGGER) -> Answer:
        """The reply to return for a command, generated until `deadline` (event loop time). Never
        raises except cancellation: a failure is the canned fallback, or `failed` without fallbacks."""
        req = interaction.request
        try:
            cfg = await self.config_source.effective(req.community_id)
            scope = await self._rate_limited(req, cfg)
            if scope:
                return Answer("rate_limited", limited_by=scope)
            language = matcher_for(cfg.triggers).match(req.message_content, "", "").language
            reply = await self._generate(interaction, cfg, trigger, deadline, language)
        except Exception as exc:  # a store or a bug: the viewer is still answered
            log.error("command answer crashed", action="execute_command", interaction_id=interaction.id,
                      error_type=type(exc).__name__, exc_info=exc)
            reply = self._fallback(req, trigger, "error")
        if reply is None:
            return Answer("failed")
        await self._remember(req, reply)  # returned next: delivered as far as this service can tell
        return Answer(reply.outcome, reply)

    # --- the dry run of the decision (POST /api/v1/ai/triggers/check) ---------------------------------
    async def check(self, message: str, message_type: str = "chatMessage", username: str = "",
                    community_id: int | None = None) -> TriggerCheck:
        """What `process` would decide about the trigger for this message in this community, without
        rate limits, an LLM call or a post: the trigger, the language, the words and the model."""
        cfg = await self.config_source.effective(community_id)
        found = matcher_for(cfg.triggers).match(message, message_type, username)
        model = cfg.model_for(found.trigger, message_type) if found.trigger else None
        return TriggerCheck(found, model, cfg.triggers.languages)

    # --- the shared steps --------------------------------------------------------------------------
    async def _rate_limited(self, req: InteractionRequest, cfg: EffectiveConfig) -> str | None:
        """Reserve a reply slot (shared by every replica with Redis or PostgreSQL, runtime.py); the
        scope that refused (user | channel), else None."""
        return await self.limiter.reserve(req.platform, req.entity_id, req.user_id,
                                          cfg.user_cooldown_s, cfg.channel_max_replies_per_min)

    async def _generate(self, interaction: Interaction, cfg: EffectiveConfig, trigger: str,
                        deadline: float | None = None, language: str | None = None) -> Reply | None:
        """The LLM's cleaned reply in the message's `language`, else the canned fallback (None when
        fallbacks are off). With a `deadline`, the LLM is waited for until then only
        (interactions/stragglers.py). A reply the blocklist refuses is replaced (§3 step 12)."""
        req = interaction.request
        prefix = self.settings.response_prefix
        history = await self.context.history(conversation_key(req))
        messages = build_messages(req, trigger, history, cfg.system_prompt, prefix, language)
        request = ChatRequest(messages=messages, model=cfg.model_for(trigger, req.message_type),
                              temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                              request_id=interaction.request_id)
        reason = "provider_error"
        try:
            call = self._complete(req, cfg, request)
            result = await (call if deadline is None else self.stragglers.wait(call, deadline))
            text = clean_reply(result.text, platform=req.platform, prefix=prefix,
                               system_prompt=cfg.system_prompt, bot_name=cfg.triggers.bot_name)
            if text is not None and blocklist_for(cfg.reply_blocklist).blocks(text):
                return self._moderated(interaction, cfg, trigger, language, result.provider, result.model)
            if text is not None:
                return Reply(text, result.provider, result.model, fallback=False,
                             exchange=(user_turn(req, trigger), text[len(prefix):]))
            reason = "empty_reply"
        except ProviderError as exc:
            reason = "breaker_open" if exc.kind == "unavailable" else f"provider_{exc.kind}"
            log.warning("provider call failed", action="generate", interaction_id=interaction.id,
                        provider=exc.provider, result=exc.kind, error=str(exc)[:200])
        except TimeoutError:
            reason = "timeout"
            log.warning("no LLM answer within EXECUTE_TIMEOUT_S", action="generate",
                        interaction_id=interaction.id, result="timeout")
        return self._fallback(req, trigger, reason, language)

    def _moderated(self, interaction: Interaction, cfg: EffectiveConfig, trigger: str, language: str | None,
                   provider: str, model: str) -> Reply:
        """The LLM's reply hit the blocklist: logged without its text, the canned reply instead."""
        log.warning("LLM reply blocked by the reply blocklist", action="moderate", result="moderated",
                    interaction_id=interaction.id, provider=provider, model=model,
                    community=interaction.request.community_id)
        canned = self._fallback(interaction.request, trigger, "moderated", language)
        if canned is None or blocklist_for(cfg.reply_blocklist).blocks(canned.text):
            return Reply("", provider, model, fallback=True, moderated=True)
        canned.moderated = True
        return canned

    async def _complete(self, req: InteractionRequest, cfg: EffectiveConfig, request: ChatRequest) -> ChatResult:
        """One LLM answer through the breakers and failover (llm/service.py), its usage recorded."""
        preferred = cfg.provider if cfg.provider in self.llm.providers else None
        result = await self.llm.complete(self.llm.attempts(request, preferred, cfg.endpoint))
        await self.usage.record(req.community_id, result.provider, result.model,
                                result.prompt_tokens, result.completion_tokens)
        return result

    def _fallback(self, req: InteractionRequest, trigger: str, reason: str,
                  language: str | None = None) -> Reply | None:
        """The canned reply for the trigger (or event type) in `language`; None when
        RESPOND_WITH_FALLBACK=false."""
        if not self.settings.respond_with_fallback:
            return None
        metrics.fallbacks_total.labels(reason=reason).inc()
        prefix = self.settings.response_prefix
        canned = fallback_reply(trigger, req.message_type, req.display, language=language)
        text = clean_reply(canned, platform=req.platform, prefix=prefix)
        return Reply(text or prefix + canned, None, None, fallback=True)

    async def _remember(self, req: InteractionRequest, reply: Reply) -> None:
        """After delivery: the viewer's turn and the LLM's reply join the context (§3 step 10)."""
        if reply.exchange is not None:
            await self.context.append(conversation_key(req), *reply.exchange)

    @staticmethod
    def _outgoing(interaction: Interaction, trigger: str, reply: Reply) -> OutgoingReply:
        """What the router's reply body is built from (router/bodies.py, ROUTER_PROTOCOL)."""
        req = interaction.request
        return OutgoingReply(
            interaction_id=interaction.id, session_id=req.session_id, platform=req.platform,
            entity_id=req.entity_id, user_id=req.user_id, text=reply.text, trigger=trigger,
            provider=reply.provider, model=reply.model, fallback=reply.fallback,
            processing_time_ms=int((time.time() - interaction.accepted_at) * 1000),
            message_id=req.message_id, channel_id=req.channel_id, execution_id=req.execution_id,
            metadata=req.metadata,
        )
