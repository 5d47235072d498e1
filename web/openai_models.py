"""Request and response bodies of the OpenAI-compatible API (§8), as pydantic models.

Fields this API does not know are ignored. The ones it knows are validated here (a bad shape is a
400 naming the field) and reach the provider as given: tools, tool_choice, parallel_tool_calls,
response_format, seed, the penalties, logprobs/top_logprobs, max_completion_tokens, and a message's
name, tool_calls and tool_call_id (llm/ollama_mapping.py maps them to Ollama's fields, or refuses
what Ollama cannot honour). Nested objects keep keys they do not name (`extra="allow"`), so a tool
or a response format reaches WaddleAI unchanged. Content may be a string or a list of text parts
(joined with newlines); other part types are refused. The `developer` role (newer OpenAI clients)
is accepted and sent to the provider as `system`.
MAX_COMPLETION_MESSAGES comes in the validation context: `model_validate_json(body, context=…)`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

Role = Literal["system", "user", "assistant", "tool", "developer"]
MAX_STOP_SEQUENCES = 4
MAX_TOOLS = 128  # OpenAI's limit
FUNCTION_NAME = r"^[A-Za-z0-9_-]{1,64}$"  # OpenAI's rule for function and schema names
INT64 = 2**63


class _Open(BaseModel):
    """A nested object that keeps the keys it does not name, to pass them on unchanged."""

    model_config = ConfigDict(extra="allow", frozen=True)

    def as_sent(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class FunctionCall(_Open):
    name: str = Field(min_length=1, max_length=256)
    arguments: str  # JSON text, as OpenAI sends it


class ToolCall(_Open):
    id: str = Field(min_length=1, max_length=256)
    type: Literal["function"] = "function"
    function: FunctionCall


class FunctionDefinition(_Open):
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON Schema object
    strict: bool | None = None


class Tool(_Open):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Open):
    name: str = Field(pattern=FUNCTION_NAME)


class NamedToolChoice(_Open):
    type: Literal["function"]
    function: NamedFunction


class AllowedTools(_Open):
    mode: Literal["auto", "required"]
    tools: list[dict[str, Any]] = Field(min_length=1)


class AllowedToolsChoice(_Open):
    type: Literal["allowed_tools"]
    allowed_tools: AllowedTools


class JsonSchemaFormat(_Open):
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None

    def as_sent(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, by_alias=True)


TOOL_MODES = ("none", "auto", "required")
CHOICE_TYPES: dict[Any, type[_Open]] = {"function": NamedToolChoice, "allowed_tools": AllowedToolsChoice}
TOOL_CHOICE = ('"none", "auto", "required", {"type": "function", "function": {"name": …}} or '
               '{"type": "allowed_tools", "allowed_tools": {"mode": …, "tools": […]}}')


def _missing() -> PydanticCustomError:
    return PydanticCustomError("missing", "Field required")


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = Field(None, validate_default=True)  # for type json_schema

    @field_validator("json_schema")
    @classmethod
    def _schema_given(cls, value: JsonSchemaFormat | None, info: ValidationInfo) -> JsonSchemaFormat | None:
        if value is None and info.data.get("type") == "json_schema":
            raise _missing()
        return value

    def as_sent(self) -> dict[str, Any]:
        sent = self.model_dump(exclude_unset=True, exclude={"json_schema"})
        return {**sent, "json_schema": self.json_schema.as_sent()} if self.json_schema else sent


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    role: Role
    content: str | None = Field(None, validate_default=True)  # null only for an assistant turn
    name: str | None = Field(None, min_length=1, max_length=256)
    tool_calls: list[ToolCall] | None = Field(None, min_length=1)  # assistant turns only
    tool_call_id: str | None = Field(None, min_length=1, max_length=256, validate_default=True)  # tool turns only

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

    @field_validator("tool_calls")
    @classmethod
    def _assistant_calls(cls, value: list[ToolCall] | None, info: ValidationInfo) -> list[ToolCall] | None:
        if value is not None and info.data.get("role") not in (None, "assistant"):
            raise ValueError("only assistant messages carry tool_calls")
        return value

    @field_validator("tool_call_id")
    @classmethod
    def _tool_reply(cls, value: str | None, info: ValidationInfo) -> str | None:
        role = info.data.get("role")
        if value is None and role == "tool":
            raise _missing()  # a tool message says which call it answers
        if value is not None and role not in (None, "tool"):
            raise ValueError("only tool messages carry tool_call_id")
        return value

    def for_provider(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "system" if self.role == "developer" else self.role,
                                   "content": self.content or ""}
        if self.name is not None:
            message["name"] = self.name
        if self.tool_calls:
            message["tool_calls"] = [call.as_sent() for call in self.tool_calls]
            message["content"] = self.content  # null beside tool calls stays null
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        return message


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
    seed: int | None = Field(None, ge=-INT64, lt=INT64)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: Any = Field(None, description=TOOL_CHOICE)  # checked by _tool_choice (one error, one param)
    parallel_tool_calls: bool | None = None

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

    @field_validator("top_logprobs")
    @classmethod
    def _with_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not info.data.get("logprobs"):
            raise ValueError("needs logprobs: true")
        return value

    @field_validator("tool_choice")
    @classmethod
    def _tool_choice(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return None
        kind = CHOICE_TYPES.get(value.get("type")) if isinstance(value, dict) else None
        if kind is not None:
            try:
                value = kind.model_validate(value)
            except ValidationError as exc:
                error = exc.errors(include_url=False, include_input=False)[0]
                raise ValueError(f"{'.'.join(map(str, error['loc']))}: {error['msg']}") from None
        elif value not in TOOL_MODES:
            raise ValueError(f"must be {TOOL_CHOICE}")
        tools = info.data.get("tools") or []
        if value != "none" and not tools:
            raise ValueError("is only allowed when tools are given")
        if isinstance(value, NamedToolChoice) and value.function.name not in {t.function.name for t in tools}:
            raise ValueError(f"names no tool of `tools`: {value.function.name!r}")
        return value

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


    def tool_choice_as_sent(self) -> str | dict[str, Any] | None:
        choice = self.tool_choice
        return choice if choice is None or isinstance(choice, str) else choice.as_sent()


# --- response shapes, for the OpenAPI document -----------------------------------------------------
class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None  # null beside tool calls
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class ContentLogprob(TokenLogprob):
    top_logprobs: list[TokenLogprob] = []


class ChoiceLogprobs(BaseModel):
    content: list[ContentLogprob] | None = None
    refusal: list[ContentLogprob] | None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None  # when asked for (`logprobs: true`) and the provider gives them
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
