"""Request and response bodies of the OpenAI-compatible API (§8), as pydantic models.

Every parameter of OpenAI's chat-completions request is known here; anything else, at the top
level, in a message or in `stream_options`, is a 400 "Unrecognized request argument supplied"
naming it, as OpenAI answers (never dropped, never sent on: a proxy's own controls are not for
callers of this API). What is known is validated (a bad shape is a 400 naming the field) and
reaches the provider as given: tools, tool_choice, parallel_tool_calls, response_format, seed, the
penalties, logprobs/top_logprobs, max_completion_tokens, the messages' name, tool_calls,
tool_call_id, function_call, refusal and audio, the `developer` and `function` roles, and the
parameters of PASSED_ON (`passed_on()`), which this service does not interpret (llm/ollama_mapping.py
maps what Ollama has an equivalent for and refuses the rest). Nested objects keep keys they do not
name (`extra="allow"`), so a tool or a response format reaches WaddleAI unchanged. Content may be
a string or a list of text parts (sent as given; Ollama's mapping joins them with newlines); other
part types are refused.
MAX_COMPLETION_MESSAGES comes in the validation context: `model_validate_json(body, context=…)`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

Role = Literal["system", "user", "assistant", "tool", "developer", "function"]  # function: the legacy tool turn
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


class AudioReference(_Open):
    id: str = Field(min_length=1, max_length=256)  # an earlier audio answer of the model


NULL_CONTENT_ROLES = (None, "assistant", "function")  # roles whose content may be null
TEXT_PART_KEYS = frozenset({"type", "text", "prompt_cache_breakpoint"})  # OpenAI's text content part
ASSISTANT_ONLY = "only assistant messages carry it"


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    # null only for an assistant or function turn; text parts are kept as given (Ollama's mapping joins them)
    content: str | list[dict[str, Any]] | None = Field(None, validate_default=True)
    name: str | None = Field(None, min_length=1, max_length=256, validate_default=True)  # required for function
    tool_calls: list[ToolCall] | None = Field(None, min_length=1)  # assistant turns only
    tool_call_id: str | None = Field(None, min_length=1, max_length=256, validate_default=True)  # tool turns only
    function_call: FunctionCall | None = None  # assistant turns only (legacy `functions`)
    refusal: str | None = None  # assistant turns only
    audio: AudioReference | None = None  # assistant turns only

    @field_validator("content", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise ValueError("must be a string or a list of text parts")
        for index, part in enumerate(value):
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise ValueError(f'part {index}: only text parts {{"type": "text", "text": "…"}} are supported')
            unknown = sorted(set(part) - TEXT_PART_KEYS)
            if unknown:
                raise ValueError(f"part {index}: unrecognized argument {unknown[0]!r} (a text part has "
                                 f"{', '.join(sorted(TEXT_PART_KEYS))})")
            if not isinstance(part.get("prompt_cache_breakpoint", {}), dict):
                raise ValueError(f"part {index}: prompt_cache_breakpoint must be an object")
        return value

    @field_validator("content")
    @classmethod
    def _required(cls, value: str | list[dict[str, Any]] | None, info: ValidationInfo) -> Any:
        if value is None and info.data.get("role") not in NULL_CONTENT_ROLES:
            raise ValueError("is required for this role")
        return value

    @field_validator("name")
    @classmethod
    def _function_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("role") == "function":
            raise _missing()  # a function message says which function answered
        return value

    @field_validator("tool_calls")
    @classmethod
    def _assistant_calls(cls, value: list[ToolCall] | None, info: ValidationInfo) -> list[ToolCall] | None:
        if value is not None and info.data.get("role") not in (None, "assistant"):
            raise ValueError("only assistant messages carry tool_calls")
        return value

    @field_validator("function_call", "refusal", "audio")
    @classmethod
    def _assistant_only(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("role") not in (None, "assistant"):
            raise ValueError(ASSISTANT_ONLY)
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
        """The message as OpenAI's JSON, role unchanged (`developer` too: Ollama's mapping makes it `system`)."""
        message: dict[str, Any] = {"role": self.role, "content": self.content}  # null (assistant, function) stays null
        if self.name is not None:
            message["name"] = self.name
        if self.tool_calls:
            message["tool_calls"] = [call.as_sent() for call in self.tool_calls]
        if self.function_call is not None:
            message["function_call"] = self.function_call.as_sent()
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        if self.refusal is not None:
            message["refusal"] = self.refusal
        if self.audio is not None:
            message["audio"] = self.audio.as_sent()
        return message


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    include_usage: bool | None = False
    include_obfuscation: bool | None = None  # honoured by this service itself (completions/service.py)


# OpenAI parameters this service carries without interpreting them (ChatRequest.extra_params): to
# WaddleAI as given, through the openai SDK's typed parameters; llm/ollama_mapping.py maps what
# Ollama has an equivalent for and refuses the rest by name. `user` and `safety_identifier` are
# also logged here (hashed).
PASSED_ON = ("logit_bias", "reasoning_effort", "functions", "function_call", "modalities", "audio",
             "prediction", "service_tier", "store", "metadata", "moderation", "prompt_cache_key",
             "prompt_cache_options", "prompt_cache_retention", "safety_identifier", "user", "verbosity",
             "web_search_options")
FUNCTION_CALL = '"none", "auto" or {"name": <a name of `functions`>}'
LOGIT_BIAS = 100  # OpenAI's bound of a token's bias


class LegacyFunctionChoice(_Open):
    name: str = Field(pattern=FUNCTION_NAME)


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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
    # PASSED_ON: shapes checked loosely; the upstream judges the rest (its 4xx comes back as a 400)
    logit_bias: dict[str, int] | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    functions: list[FunctionDefinition] | None = Field(None, min_length=1, max_length=MAX_TOOLS)
    function_call: Any = Field(None, description=FUNCTION_CALL)  # checked by _function_call
    modalities: list[Literal["text", "audio"]] | None = Field(None, min_length=1, max_length=2)
    audio: dict[str, Any] | None = None  # {"format", "voice"}
    prediction: dict[str, Any] | None = None  # {"type": "content", "content": …}
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = Field(None, max_length=16)
    moderation: dict[str, Any] | None = None
    prompt_cache_key: str | None = Field(None, max_length=1024)
    prompt_cache_options: dict[str, Any] | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    safety_identifier: str | None = Field(None, max_length=128)
    verbosity: Literal["low", "medium", "high"] | None = None
    web_search_options: dict[str, Any] | None = None

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

    @field_validator("stream_options")
    @classmethod
    def _when_streaming(cls, value: StreamOptions | None, info: ValidationInfo) -> StreamOptions | None:
        if value is not None and not info.data.get("stream"):
            raise ValueError("is only allowed with stream: true")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _biases(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        for token, bias in (value or {}).items():
            if not token.isdigit() or not -LOGIT_BIAS <= bias <= LOGIT_BIAS:
                raise ValueError(f"maps token ids to biases from -{LOGIT_BIAS} to {LOGIT_BIAS} ({token!r}: {bias})")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key, text in (value or {}).items():
            if len(key) > 64 or len(text) > 512:
                raise ValueError(f"keys are at most 64 characters, values at most 512 ({key[:64]!r})")
        return value

    @field_validator("function_call")
    @classmethod
    def _function_call(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or value in ("none", "auto"):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"must be {FUNCTION_CALL}")
        try:
            chosen = LegacyFunctionChoice.model_validate(value)
        except ValidationError as exc:
            error = exc.errors(include_url=False, include_input=False)[0]
            raise ValueError(f"{'.'.join(map(str, error['loc']))}: {error['msg']}") from None
        if chosen.name not in {f.name for f in info.data.get("functions") or []}:
            raise ValueError(f"names no function of `functions`: {chosen.name!r}")
        return value

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def include_obfuscation(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_obfuscation)

    def passed_on(self) -> dict[str, Any]:
        """The PASSED_ON parameters the caller set (null ones are not asked for), as OpenAI's JSON."""
        return {name: self.model_dump(mode="json", include={name}, exclude_unset=True, by_alias=True)[name]
                for name in PASSED_ON if getattr(self, name) is not None}

    def tool_choice_as_sent(self) -> str | dict[str, Any] | None:
        choice = self.tool_choice
        return choice if choice is None or isinstance(choice, str) else choice.as_sent()


# --- response shapes, for the OpenAPI document -----------------------------------------------------
class AssistantMessage(BaseModel):
    """The upstream's other message fields (`annotations`, `audio`, `reasoning_content`, …) come as it sent them."""

    model_config = ConfigDict(extra="allow")

    role: Literal["assistant"] = "assistant"
    content: str | None  # null beside tool calls
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None  # legacy `functions`


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
    finish_reason: Literal["stop", "length", "content_filter", "tool_calls", "function_call"]


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
    service_tier: str | None = None  # as the upstream said (absent when it said nothing)


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


# --- the error statuses of POST …/chat/completions, each described (its docstring) in the OpenAPI document
class BadRequestResponse(OpenAIErrorResponse):
    """invalid_request_error: a bad field (`param` names it; `invalid_value`, `missing_required_parameter`,
    `invalid_json`), a field OpenAI's request does not have (`unknown_parameter`), a parameter the chosen
    provider cannot honour (`unsupported_parameter`, `unsupported_value`), or the provider refused the
    request itself (`provider_rejected_request`)."""


class UnauthorizedResponse(OpenAIErrorResponse):
    """`invalid_api_key` (WWW-Authenticate: Bearer), or `api_keys_not_configured` (VALID_API_KEYS is empty)."""


class NotFoundResponse(OpenAIErrorResponse):
    """`model_not_found` (`param: "model"`): the provider does not know the model, whatever status it said so with."""


class TooLargeResponse(OpenAIErrorResponse):
    """`request_too_large`: the body is over MAX_BODY_BYTES."""


class RateLimitedResponse(OpenAIErrorResponse):
    """type `requests`, `rate_limit_exceeded`: over COMPLETIONS_RATE_PER_MIN for this key (Retry-After,
    x-ratelimit-limit-requests, x-ratelimit-remaining-requests)."""


class InternalErrorResponse(OpenAIErrorResponse):
    """server_error `internal_error`: a bug of this service (details in its log)."""


class UpstreamMisconfiguredResponse(OpenAIErrorResponse):
    """server_error `upstream_misconfigured`: the LLM provider refused this service's own credentials or
    headers (401, 403, a 4xx about headers) or serves no API at its URL; not a problem with the request:
    the operator must fix the provider settings (details in the service's log)."""


class UnavailableResponse(OpenAIErrorResponse):
    """server_error, Retry-After: `provider_unavailable` (the provider's circuit breaker is open),
    `model_unavailable` (`param: "model"`: that model's own breaker is open after repeated quota or rate
    limit failures; the provider's other models still answer), `provider_timeout`, `provider_error`
    (connection error, 5xx, 408/429, an unreadable answer), `shutting_down`."""
