"""OpenAI's request vocabulary → Ollama's own fields, and Ollama's answer → OpenAI's shapes.

Through the official `ollama` client (0.6.3), whose types decide what reaches Ollama:

| OpenAI | Ollama |
|---|---|
| temperature, top_p, stop, seed, frequency_penalty, presence_penalty | `options.<same name>` |
| max_completion_tokens (else max_tokens) | `options.num_predict` |
| response_format json_object / json_schema / text | `format: "json"` / `format: <the schema>` / nothing |
| tools, tool_choice "auto" | `tools` in Ollama's tool schema (`_tool`): `anyOf` of plain types → `type: [...]`; annotations left out |
| tool_choice "none" | no `tools` sent: the model cannot call one |
| assistant `tool_calls` | `tool_calls: [{function: {name, arguments: <object>}}]` (arguments parsed) |
| tool turn's `tool_call_id` (or `name`) | `tool_name`: the name of the call with that id earlier in the history |
| logprobs, top_logprobs | the same fields (Ollama returns `logprobs` per token) |
| role `developer` | role `system` (Ollama has no developer role; it is the same instruction) |
| content as a list of text parts | their texts joined with newlines |
| reasoning_effort none / low / medium / high | `think: false` / `think: "low"` / `"medium"` / `"high"` |
| modalities ["text"], service_tier auto / default, store false | nothing: that is what Ollama does |
| user, safety_identifier | nothing sent: this service logs them (hashed) per completion |
| (answer) message.thinking | `reasoning_content` of the message or delta |

What cannot be mapped raises `UnsupportedParameter` naming it: tool_choice "required" or a named
tool, parallel_tool_calls false, a function's `strict: true`, a tool schema keyword Ollama's tool
type does not carry, a `name` on a non-tool message, a tool turn whose call is not in the history,
tool-call arguments that are not a JSON object, the legacy function calling (`functions`,
`function_call`, `function` turns, an assistant's `function_call`), an assistant's `refusal` or
`audio`, and every other parameter of `ChatRequest.extra_params` (EXTRA_PARAMS says which values
can be honoured; a parameter not named there is refused whatever its value, so one OpenAI adds
later is refused until it is mapped here).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterable

import ollama
import pydantic

from llm.fidelity import UnsupportedParameter
from llm.types import ChatRequest

NAME = "ollama"
# JSON Schema keywords that only annotate (they never change which calls are valid): Ollama's tool
# type has no room for them, and leaving them out changes nothing the model may call.
ANNOTATIONS = frozenset({"title", "$schema", "$comment", "examples", "default"})
_COMPACT = (",", ":")


def _refuse(param: str, message: str, code: str = "unsupported_parameter") -> UnsupportedParameter:
    return UnsupportedParameter(f"Ollama cannot honour '{param}': {message}", provider=NAME, param=param,
                                code=code)


THINK = {"none": False, "low": "low", "medium": "medium", "high": "high"}  # reasoning_effort → think
# ChatRequest.extra_params Ollama can honour, and the values it can: name → {value: Ollama's keyword
# arguments}. Any other parameter or value is refused by name.
EXTRA_PARAMS: dict[str, dict[Any, dict[str, Any]]] = {
    "reasoning_effort": {effort: {"think": think} for effort, think in THINK.items()},
    "modalities": {("text",): {}},
    "service_tier": {"auto": {}, "default": {}},
    "store": {False: {}},
}
LOGGED_HERE = frozenset({"user", "safety_identifier"})  # honoured by this service: logged, hashed
WHY_NOT = {
    "reasoning_effort": 'Ollama\'s `think` takes "none" (off), "low", "medium" or "high"',
    "modalities": "Ollama answers with text only",
    "service_tier": 'Ollama has one tier: only "auto" and "default" are possible',
    "store": "Ollama stores no completions",
    "functions": "legacy function calling answers with one `function_call`, which Ollama cannot guarantee; use `tools`",
    "function_call": "legacy function calling answers with one `function_call`, which Ollama cannot guarantee; "
                     "use `tools` and `tool_choice`",
}


def chat_kwargs(request: ChatRequest, model: str) -> dict[str, Any]:
    """The keyword arguments of `ollama.AsyncClient.chat` for this request (without `stream`)."""
    kwargs: dict[str, Any] = {"model": model, "messages": _messages(request.messages),
                              "options": _options(request), **_extra_params(request.extra_params)}
    tools = _tools(request)
    if tools:
        kwargs["tools"] = tools
    fmt = _format(request.response_format)
    if fmt is not None:
        kwargs["format"] = fmt
    if request.logprobs is not None:
        kwargs["logprobs"] = request.logprobs
    if request.top_logprobs is not None:
        kwargs["top_logprobs"] = request.top_logprobs
    return kwargs


def _extra_params(params: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for name, value in params.items():
        if name in LOGGED_HERE or value == {}:  # an empty object (logit_bias, metadata) asks for nothing
            continue
        honoured = EXTRA_PARAMS.get(name)
        key = tuple(value) if isinstance(value, list) else value
        if honoured is not None and isinstance(key, (str, bool, tuple)) and key in honoured:
            kwargs.update(honoured[key])
        elif honoured is not None:
            raise _refuse(name, f"{WHY_NOT[name]} (got {value!r})", "unsupported_value")
        else:
            raise _refuse(name, WHY_NOT.get(name, "Ollama has no equivalent"))
    return kwargs


def _options(request: ChatRequest) -> dict[str, Any] | None:
    options = {"temperature": request.temperature, "num_predict": request.token_limit,
               "top_p": request.top_p, "stop": request.stop, "seed": request.seed,
               "frequency_penalty": request.frequency_penalty, "presence_penalty": request.presence_penalty}
    return {k: v for k, v in options.items() if v is not None} or None


def _format(response_format: dict[str, Any] | None) -> str | dict[str, Any] | None:
    kind = (response_format or {}).get("type")
    if kind is None or kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")  # type: ignore[union-attr]
        return schema if schema else "json"
    raise _refuse("response_format.type", f"unknown response format {kind!r}", "unsupported_value")


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id → function name, from the assistant turns so far
    for i, message in enumerate(messages):
        role = "system" if message["role"] == "developer" else message["role"]
        item: dict[str, Any] = {"role": role, "content": _content(message.get("content"), i)}
        if role == "function":
            raise _refuse(f"messages[{i}].role", "legacy function messages: use tool messages (`tool_call_id`)",
                          "unsupported_value")
        for field, why in (("function_call", "legacy function calls: use `tool_calls`"),
                           ("refusal", "Ollama messages carry no refusal; put it in the content"),
                           ("audio", "Ollama has no audio answers to refer to")):
            if message.get(field) is not None:
                raise _refuse(f"messages[{i}].{field}", why)
        if message.get("name") is not None and role != "tool":
            raise _refuse(f"messages[{i}].name", "Ollama messages have no name; put it in the content")
        if message.get("tool_calls"):
            item["tool_calls"] = []
            for j, call in enumerate(message["tool_calls"]):
                function = call.get("function") or {}
                arguments = _arguments(function.get("arguments"), f"messages[{i}].tool_calls[{j}].function.arguments")
                item["tool_calls"].append({"function": {"name": function.get("name"), "arguments": arguments}})
                if call.get("id"):
                    names[call["id"]] = function.get("name")
        if role == "tool":
            name = message.get("name") or names.get(message.get("tool_call_id") or "")
            if not name:
                raise _refuse(f"messages[{i}].tool_call_id",
                              "no earlier assistant tool call has this id, and Ollama needs the tool's name")
            item["tool_name"] = name
        out.append(item)
    return out


def _content(content: str | list[dict[str, Any]] | None, i: int) -> str:
    """Text parts joined with newlines (Ollama's content is one string); a part's other keys
    (`prompt_cache_breakpoint`) have no equivalent."""
    if not isinstance(content, list):
        return content or ""
    for j, part in enumerate(content):
        other = sorted(set(part) - {"type", "text"})
        if other:
            raise _refuse(f"messages[{i}].content[{j}].{other[0]}", "Ollama has no equivalent")
    return "\n".join(part["text"] for part in content)


def _arguments(text: Any, param: str) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text) if text else {}
    except (TypeError, ValueError):
        value = None
    if not isinstance(value, dict):
        raise _refuse(param, "Ollama takes tool-call arguments as an object; this is not a JSON object",
                      "unsupported_value")
    return value


def _tools(request: ChatRequest) -> list[dict[str, Any]] | None:
    if not request.tools or request.tool_choice == "none":
        return None  # "none": Ollama has no switch; without tools the model cannot call one
    if request.tool_choice not in (None, "auto"):
        raise _refuse("tool_choice", 'Ollama lets the model choose: only "auto" and "none" are possible',
                      "unsupported_value")
    if request.parallel_tool_calls is False:
        raise _refuse("parallel_tool_calls", "Ollama cannot limit a turn to one tool call", "unsupported_value")
    return [_tool(tool, f"tools[{i}]") for i, tool in enumerate(request.tools)]


def _tool(tool: dict[str, Any], param: str) -> dict[str, Any]:
    function = dict(tool.get("function") or {})
    if function.pop("strict", None):
        raise _refuse(f"{param}.function.strict", "Ollama does not enforce a tool's schema", "unsupported_value")
    parameters = function.get("parameters")
    if isinstance(parameters, dict) and isinstance(parameters.get("properties"), dict):
        properties = {k: _type_list(v) for k, v in parameters["properties"].items()}
        function["parameters"] = {**parameters, "properties": properties}
    wanted = {"type": tool.get("type", "function"), "function": function}
    try:
        kept = ollama.Tool.model_validate(wanted).model_dump(exclude_none=True, by_alias=True)
    except pydantic.ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        raise _refuse(param + where, f"Ollama's tool schema refuses it ({error['msg']})", "unsupported_value") from None
    lost = _first_lost(wanted, kept)
    if lost:
        raise _refuse(param + lost, "Ollama's tool schema has no room for this keyword (a tool property "
                                    "carries only type, description, enum and items)")
    return kept


def _type_list(prop: Any) -> Any:
    """`anyOf` of bare types (pydantic's Optional[int]: integer or null) → Ollama's `type: [...]`."""
    members = prop.get("anyOf") if isinstance(prop, dict) and "type" not in prop else None
    if not isinstance(members, list) or not members:
        return prop
    if not all(isinstance(m, dict) and isinstance(m.get("type"), str) and set(m) <= {"type"} | ANNOTATIONS
               for m in members):
        return prop
    return {**{k: v for k, v in prop.items() if k != "anyOf"}, "type": [m["type"] for m in members]}


def _first_lost(original: Any, kept: Any, path: str = "", names: bool = False) -> str | None:
    """The path of the first part of `original` missing from `kept` (annotations and None aside).
    `names`: the keys here are property names (under "properties" or "$defs"), never annotations."""
    if isinstance(original, dict):
        if not isinstance(kept, dict):
            return path
        for key, value in original.items():
            if value is None or (not names and (key in ANNOTATIONS or (key == "additionalProperties"
                                                                        and value is False))):
                continue
            where = f"{path}.{key}"
            if key not in kept:
                return where
            lost = _first_lost(value, kept[key], where, names=not names and key in ("properties", "$defs"))
            if lost:
                return lost
        return None
    if isinstance(original, list):
        if not isinstance(kept, list) or len(kept) != len(original):
            return path
        for i, (a, b) in enumerate(zip(original, kept)):
            lost = _first_lost(a, b, f"{path}[{i}]")
            if lost:
                return lost
        return None
    return None if original == kept else path


# --- the answer ---------------------------------------------------------------------------------
def tool_calls(calls: Iterable[Any] | None, first_index: int | None = None) -> list[dict[str, Any]] | None:
    """Ollama's tool calls as OpenAI's, each with a new `call_…` id (Ollama's client gives none).
    With `first_index`, as stream deltas: each carries its `index`, counted from there."""
    out = []
    for k, call in enumerate(calls or ()):
        item: dict[str, Any] = {} if first_index is None else {"index": first_index + k}
        item.update({"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function", "function": {
            "name": call.function.name,
            "arguments": json.dumps(dict(call.function.arguments or {}), ensure_ascii=False, separators=_COMPACT)}})
        out.append(item)
    return out or None


def thinking(message: Any) -> dict[str, Any] | None:
    """Ollama's `thinking` (with `think` on) as `reasoning_content`, the field OpenAI-compatible
    servers (vLLM, LiteLLM, DeepSeek) use for it; OpenAI itself returns no reasoning text."""
    text = message.thinking
    return {"reasoning_content": text} if text else None


def _token(entry: Any) -> dict[str, Any]:
    return {"token": entry.token, "logprob": entry.logprob, "bytes": list(entry.token.encode())}


def logprobs(entries: Iterable[Any] | None) -> dict[str, Any] | None:
    """Ollama's per-token logprobs as OpenAI's `choice.logprobs`."""
    content = [{**_token(e), "top_logprobs": [_token(t) for t in e.top_logprobs or ()]} for e in entries or ()]
    return {"content": content, "refusal": None} if content else None
