"""Request and response bodies of the OpenAI-compatible API (§8), as pydantic models.

Unknown fields are ignored (clients send many: tools, presence_penalty, seed, …). Content may be
a string or a list of text parts (joined with newlines); other part types are refused. The
`developer` role (newer OpenAI clients) is accepted and sent to the provider as `system`.
MAX_COMPLETION_MESSAGES comes in the validation context: `model_validate_json(body, context=…)`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

Role = Literal["system", "user", "assistant", "tool", "developer"]
MAX_STOP_SEQUENCES = 4


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    role: Role
    content: str | None = Field(None, validate_default=True)  # null only for an assistant turn

    @field_validator("content", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise ValueError("must be a string or a list of text parts")
        texts = []
        for index, part in enumerate(value):
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise ValueError(f'part {index}: only text parts {{"type": "text", "text": "…"}} are supported')
            texts.append(part["text"])
        return "\n".join(texts)

    @field_validator("content")
    @classmethod
    def _required(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("role") not in (None, "assistant"):
            raise ValueError("is required for this role")
        return value

    def for_provider(self) -> dict[str, str]:
        return {"role": "system" if self.role == "developer" else self.role, "content": self.content or ""}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    include_usage: bool | None = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    model: str | None = Field(None, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int | None = None
    stop: list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=256)

    @field_validator("messages")
    @classmethod
    def _message_count(cls, value: list[ChatMessage], info: ValidationInfo) -> list[ChatMessage]:
        limit = (info.context or {}).get("max_messages", 100)
        if len(value) > limit:
            raise ValueError(f"at most {limit} messages are accepted (MAX_COMPLETION_MESSAGES)")
        return value

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value is not None and value != 1:
            raise ValueError("only n=1 is supported")
        return value

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and len(value) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences")
        return value

    @property
    def token_limit(self) -> int | None:
        """`max_completion_tokens` (current name) wins over `max_tokens` (deprecated name)."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


# --- response shapes, for the OpenAPI document -----------------------------------------------------
class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: str | None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: None = None
    finish_reason: Literal["stop", "length", "content_filter", "tool_calls"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    """Non-streamed answer. With `stream: true` the answer is `text/event-stream` of
    `chat.completion.chunk` objects, ending with `data: [DONE]`."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorResponse(BaseModel):
    error: OpenAIErrorBody
