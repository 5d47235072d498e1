"""Chat commands answered inline for the WaddleBot router (§11): `POST /api/v1/execute`.

The published WaddleBot router (penguintechinc/waddlebot v1.2) hands a registered chat command
(`!ai …`, `#ask …`) to its module with the module SDK's `ExecuteRequest`
(libs/module_sdk/base/module.py), waits up to its ROUTER_REQUEST_TIMEOUT (30 s) and takes the SDK's
`ExecuteResponse` as the answer. Its command processor
(processing/router_module/services/command_processor.py) sends a narrower body than the SDK declares:
`args` as one string (the text after the command), `community_id` an integer, no `platform`,
`metadata` or `scopes`, and an extra `message` (the whole chat line). Both shapes are accepted.

The answer comes from the same pipeline as the interaction path (`ReplyPipeline.answer`): rate
limits, context, breaker and failover, fallbacks, cleaning, usage. Within EXECUTE_TIMEOUT_S, else
the canned fallback. What the router would post to chat decides the rest:

    command not in COMMANDS        success false, error naming it
    no question (`!ai` alone)      success true, a one-line usage hint
    rate-limited                   success true, empty message: nothing is posted (an error would be)
    LLM reply / canned fallback    success true, the reply; data.fallback says which
    nothing (fallbacks off)        success false, error
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from config.settings import Settings, command_name
from interactions.fallbacks import FALLBACK_NAME
from interactions.model import (
    COMMUNITY_ID_MAX, NO_NUL, UNKNOWN_PLATFORM, Interaction, InteractionRequest, check_metadata, check_platform,
)
from interactions.outcomes import record_outcome
from interactions.reply import COMMAND_TRIGGER, Answer, ReplyPipeline

ACTION = "execute_command"
UNAVAILABLE = "The AI can't answer right now, please try again later."


class ExecuteRequest(BaseModel):
    """The module SDK's `ExecuteRequest`; unknown fields (the router's `message`) are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    command: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    args: list[str] | str = Field(default_factory=list)
    user_id: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    entity_id: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    community_id: int | str | None = None
    session_id: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    platform: str | None = Field(None, max_length=50, pattern=NO_NUL)
    metadata: dict[str, Any] = Field(default_factory=dict)
    scopes: list[str] = Field(default_factory=list)

    @field_validator("args")
    @classmethod
    def _args(cls, value: list[str] | str, info: ValidationInfo) -> list[str] | str:
        parts = [value] if isinstance(value, str) else value
        if any("\x00" in part for part in parts):
            raise ValueError("must not contain NUL (U+0000) characters")
        limit = (info.context or {}).get("max_message_chars", 10000)
        if sum(len(part) + 1 for part in parts) > limit + 1:
            raise ValueError(f"must be at most {limit} characters together")
        return value

    @field_validator("community_id", mode="before")
    @classmethod
    def _community(cls, value: Any) -> int | None:
        """An integer (the router's) or its digits as a string (the SDK's type); empty is none."""
        if value is None or value == "":
            return None
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= COMMUNITY_ID_MAX:
            raise ValueError(f"must be a community id from 1 to {COMMUNITY_ID_MAX} (an integer or its digits)")
        return value

    @field_validator("platform")
    @classmethod
    def _known_platform(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_platform(value, info)

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata(cls, value: Any) -> Any:
        return check_metadata(value)

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        if any("\x00" in scope for scope in value):
            raise ValueError("must not contain NUL (U+0000) characters")
        return value

    @property
    def question(self) -> str:
        """The text after the command."""
        return (self.args if isinstance(self.args, str) else " ".join(self.args)).strip()

    def viewer_name(self) -> str:
        """How to address the viewer: the metadata's display name or username, if the caller sent one."""
        for key in ("display_name", "username"):
            name = self.metadata.get(key)
            if isinstance(name, str) and name.strip():
                return name.strip()[:255]
        return FALLBACK_NAME

    def as_interaction(self) -> InteractionRequest:
        """The command as the pipeline's request (already validated here: built without re-checking)."""
        community = self.community_id if isinstance(self.community_id, int) else None
        return InteractionRequest.model_construct(
            session_id=self.session_id, user_id=self.user_id, entity_id=self.entity_id,
            platform=self.platform or UNKNOWN_PLATFORM, username=self.viewer_name(), display_name=None,
            message_type="command", message_content=self.question, message_id=None, channel_id=None,
            execution_id=None, community_id=community, metadata=self.metadata,
        )


class ExecuteResponse(BaseModel):
    """The module SDK's `ExecuteResponse`."""

    success: bool
    message: str | None = None
    data: dict[str, Any] | None = None
    error: str | None = None
    targets: list[dict[str, Any]] = Field(default_factory=list)


class CommandAnswerer:
    def __init__(self, settings: Settings, pipeline: ReplyPipeline) -> None:
        self.commands = frozenset(settings.commands)
        self.timeout_s = settings.execute_timeout_s
        self.pipeline = pipeline

    async def execute(self, req: ExecuteRequest, request_id: str) -> ExecuteResponse:
        """Answer one command within EXECUTE_TIMEOUT_S; the outcome is counted and logged."""
        started = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        interaction = Interaction(req.as_interaction(), request_id=request_id)
        name = command_name(req.command)
        if name not in self.commands:
            record_outcome(interaction, "ignored", "none", started, action=ACTION)
            known = ", ".join(f"!{c}" for c in sorted(self.commands)) or "none"
            return ExecuteResponse(success=False, error=f"unknown command: {req.command.strip()} "
                                                        f"(this module answers {known})")
        if not req.question:
            record_outcome(interaction, "ignored", "none", started, action=ACTION)
            shown = req.command.strip() if req.command.strip()[:1] in ("!", "#") else f"!{name}"
            return ExecuteResponse(success=True, message=f"Usage: {shown} <your question>",
                                   data={"usage": True})
        try:
            answer = await self.pipeline.answer(interaction, deadline, COMMAND_TRIGGER)
        except asyncio.CancelledError:  # the caller went away (the server cancelled the request)
            record_outcome(interaction, "failed", COMMAND_TRIGGER, started, action=ACTION)
            raise
        record_outcome(interaction, answer.outcome, COMMAND_TRIGGER, started, action=ACTION)
        return self._response(interaction, answer)

    @staticmethod
    def _response(interaction: Interaction, answer: Answer) -> ExecuteResponse:
        data: dict[str, Any] = {"interaction_id": interaction.id}
        if answer.outcome == "rate_limited":
            return ExecuteResponse(success=True, message="",
                                   data={**data, "rate_limited": True, "scope": answer.limited_by})
        reply = answer.reply
        if reply is not None and not reply.text:  # moderated with no canned reply: nothing to post
            return ExecuteResponse(success=True, message="", data={**data, "moderated": True})
        if reply is None:
            return ExecuteResponse(success=False, error=UNAVAILABLE, data={**data, "fallback": False})
        return ExecuteResponse(success=True, message=reply.text, data={
            **data, "provider": reply.provider, "model": reply.model, "fallback": reply.fallback,
            **({"moderated": True} if reply.moderated else {})})
