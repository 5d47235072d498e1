"""Request fidelity of the OpenAI-compatible API (§8), through the official openai SDK, on both
providers: what the client asks for reaches WaddleAI as given and Ollama mapped to its own fields;
tool calls and logprobs come back in OpenAI's shapes, streamed tool calls as deltas the SDK's
stream helpers reassemble; what Ollama cannot honour is a 400 naming it, never dropped."""

from __future__ import annotations

import copy
import json
from typing import Any

import openai
import pytest

from tests.support import make_settings, running_app
from tests.web.completion_apps import AUTH, KEY

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "the city"},
                                                    "unit": {"type": "string", "enum": ["C", "F"]}},
                   "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
ASK = [{"role": "user", "content": "Weather in Paris and Oslo?"}]
CALLS = [{"name": "get_weather", "arguments": {"city": "Paris"}},
         {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "C"}}]
HISTORY = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    {"role": "tool", "tool_call_id": "call_abc", "content": "18 C, sunny"},
]
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
          "additionalProperties": False}


@pytest.fixture
def ask() -> list[dict[str, Any]]:
    return ASK


# --- tools --------------------------------------------------------------------------------------------
def test_tools_round_trip(setup):
    setup.fake.reply, setup.fake.tool_calls = "", CALLS
    completion = setup.create(tools=[WEATHER, TIME], tool_choice="auto")
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert [(c.type, c.function.name, json.loads(c.function.arguments)) for c in calls] == \
        [("function", c["name"], c["arguments"]) for c in CALLS]
    assert all(c.id.startswith("call_") for c in calls) and len({c.id for c in calls}) == 2
    body = setup.fake.last_body
    assert body["tools"] == [WEATHER, TIME]  # Ollama's tool type carries these schemas whole
    if setup.provider == "waddleai":
        assert body["tool_choice"] == "auto"
    else:
        assert "tool_choice" not in body  # "auto" is what Ollama does with tools


def test_streamed_tool_calls_are_deltas_the_sdk_reassembles(setup):
    setup.fake.reply, setup.fake.tool_calls = "", CALLS
    with setup.sdk() as sdk:
        with sdk.chat.completions.stream(model=setup.model, messages=ASK, tools=[WEATHER]) as stream:
            events = list(stream)
            final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == \
        [(c["name"], c["arguments"]) for c in CALLS]
    done = [e for e in events if e.type == "tool_calls.function.arguments.done"]
    assert [(e.index, e.name) for e in done] == [(0, "get_weather"), (1, "get_weather")]
    deltas = [tc for e in events if e.type == "chunk" and e.chunk.choices
              for tc in e.chunk.choices[0].delta.tool_calls or ()]
    firsts = [d for d in deltas if d.id]
    assert [d.index for d in firsts] == [0, 1] and all(d.type == "function" and d.function.name for d in firsts)
    assert setup.fake.last_body["stream"] is True and setup.fake.last_body["tools"] == [WEATHER]


def test_a_stream_of_text_and_tool_calls_keeps_both(setup):
    setup.fake.reply = "Let me look."
    setup.fake.tool_calls = CALLS[:1]
    with setup.sdk() as sdk:
        chunks = list(sdk.chat.completions.create(model=setup.model, messages=ASK, tools=[WEATHER], stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Let me look."
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_history_with_tool_calls_reaches_the_upstream(setup):
    setup.create(messages=HISTORY, tools=[WEATHER])
    sent = setup.fake.last_body["messages"]
    if setup.provider == "waddleai":
        assert sent == HISTORY  # unchanged
    else:
        assert sent == [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
            {"role": "tool", "content": "18 C, sunny", "tool_name": "get_weather"},
        ]


def test_tool_choice_none_on_ollama_sends_no_tools(ollama):
    ollama.create(tools=[WEATHER], tool_choice="none")
    assert not ollama.fake.last_body.get("tools")  # the ollama client always sends a list


def test_optional_arguments_become_ollamas_type_lists(ollama):
    tool = copy.deepcopy(WEATHER)
    tool["function"]["parameters"]["properties"]["days"] = {"anyOf": [{"type": "integer"}, {"type": "null"}],
                                                            "default": None, "title": "Days"}
    ollama.create(tools=[tool])
    assert ollama.fake.last_body["tools"][0]["function"]["parameters"]["properties"]["days"] == \
        {"type": ["integer", "null"]}


# --- response_format, sampling, names -----------------------------------------------------------------
def test_response_format_json_schema(setup):
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}
    setup.fake.reply = '{"answer": "42"}'
    completion = setup.create(response_format=fmt)
    assert json.loads(completion.choices[0].message.content) == {"answer": "42"}
    body = setup.fake.last_body
    if setup.provider == "waddleai":
        assert body["response_format"] == fmt
    else:
        assert body["format"] == SCHEMA and "response_format" not in body


def test_response_format_json_object(setup):
    setup.create(response_format={"type": "json_object"})
    body = setup.fake.last_body
    assert body.get("format" if setup.provider == "ollama" else "response_format") == \
        ("json" if setup.provider == "ollama" else {"type": "json_object"})


def test_seed_penalties_token_limit_and_name_reach_the_upstream(setup):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi", "name": "alice"}]
    if setup.provider == "ollama":
        messages[1].pop("name")  # refused on Ollama: see test_what_ollama_cannot_honour_is_a_400
    setup.create(messages=messages, seed=7, frequency_penalty=0.5, presence_penalty=-0.25,
                 max_completion_tokens=42, temperature=0.3)
    body = setup.fake.last_body
    if setup.provider == "waddleai":
        assert {k: body[k] for k in ("seed", "frequency_penalty", "presence_penalty", "max_completion_tokens")} == \
            {"seed": 7, "frequency_penalty": 0.5, "presence_penalty": -0.25, "max_completion_tokens": 42}
        assert "max_tokens" not in body  # not renamed
        assert body["messages"] == messages
    else:
        assert body["options"] == {"seed": 7, "frequency_penalty": 0.5, "presence_penalty": -0.25,
                                   "num_predict": 42, "temperature": 0.3}


def test_max_tokens_still_goes_as_max_tokens_to_waddleai(waddleai):
    waddleai.create(max_tokens=9)
    assert waddleai.fake.last_body["max_tokens"] == 9 and "max_completion_tokens" not in waddleai.fake.last_body


def test_tool_message_name_is_ollamas_tool_name(ollama):
    messages = [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "ext-1", "name": "lookup",
                                                   "content": "found"}]
    ollama.create(messages=messages)
    assert ollama.fake.last_body["messages"][1] == {"role": "tool", "content": "found", "tool_name": "lookup"}


# --- logprobs -------------------------------------------------------------------------------------------
def test_logprobs_come_back(setup):
    completion = setup.create(logprobs=True, top_logprobs=2)
    content = completion.choices[0].logprobs.content
    assert [entry.token for entry in content] == setup.fake.pieces()
    assert content[0].logprob == -0.25 and content[0].bytes == list(content[0].token.encode())
    assert [t.logprob for t in content[0].top_logprobs] == [-1.0, -2.0]
    body = setup.fake.last_body
    assert body["logprobs"] is True and body["top_logprobs"] == 2


def test_streamed_logprobs_come_with_their_pieces(setup):
    with setup.sdk() as sdk:
        chunks = list(sdk.chat.completions.create(model=setup.model, messages=ASK, stream=True, logprobs=True))
    tokens = [t.token for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert tokens == setup.fake.pieces()


def test_without_logprobs_asked_none_come_back(setup):
    assert setup.create().choices[0].logprobs is None


# --- what Ollama cannot honour ----------------------------------------------------------------------
STRICT = {"type": "function", "function": {**WEATHER["function"], "strict": True}}
CONSTRAINED = copy.deepcopy(WEATHER)
CONSTRAINED["function"]["parameters"]["properties"]["city"]["minLength"] = 2
NESTED = copy.deepcopy(WEATHER)
NESTED["function"]["parameters"]["properties"]["where"] = {"type": "object", "properties": {"lat": {"type": "number"}}}
BAD_ARGUMENTS = copy.deepcopy(HISTORY)
BAD_ARGUMENTS[1]["tool_calls"][0]["function"]["arguments"] = "[1, 2]"
UNSUPPORTED_ON_OLLAMA = [
    ({"tools": [WEATHER], "tool_choice": "required"}, "tool_choice", "unsupported_value"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
     "tool_choice", "unsupported_value"),
    ({"tools": [WEATHER], "parallel_tool_calls": False}, "parallel_tool_calls", "unsupported_value"),
    ({"tools": [STRICT]}, "tools[0].function.strict", "unsupported_value"),
    ({"tools": [CONSTRAINED]}, "tools[0].function.parameters.properties.city.minLength", "unsupported_parameter"),
    ({"tools": [NESTED]}, "tools[0].function.parameters.properties.where.properties", "unsupported_parameter"),
    ({"messages": [{"role": "user", "content": "hi", "name": "alice"}]}, "messages[0].name", "unsupported_parameter"),
    ({"messages": [ASK[0], {"role": "tool", "tool_call_id": "nowhere", "content": "x"}]},
     "messages[1].tool_call_id", "unsupported_parameter"),
    ({"messages": BAD_ARGUMENTS}, "messages[1].tool_calls[0].function.arguments", "unsupported_value"),
]
IDS = [param for _, param, _ in UNSUPPORTED_ON_OLLAMA]


@pytest.mark.parametrize("kwargs,param,code", UNSUPPORTED_ON_OLLAMA, ids=IDS)
def test_what_ollama_cannot_honour_is_a_400(ollama, kwargs, param, code):
    with pytest.raises(openai.BadRequestError) as caught:
        ollama.create(**kwargs)
    assert (caught.value.param, caught.value.code, caught.value.type) == (param, code, "invalid_request_error")
    assert "Ollama cannot honour" in caught.value.message
    assert ollama.fake.chat_requests == []  # refused before any call


@pytest.mark.parametrize("kwargs,param,code", UNSUPPORTED_ON_OLLAMA[:2], ids=IDS[:2])
def test_a_stream_ollama_cannot_honour_is_a_400_before_any_byte(ollama, kwargs, param, code):
    with ollama.sdk() as sdk, pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=ollama.model, messages=ASK, stream=True, **kwargs)
    assert caught.value.param == param and ollama.fake.chat_requests == []


@pytest.mark.parametrize("kwargs,param,code", UNSUPPORTED_ON_OLLAMA, ids=IDS)
def test_waddleai_takes_the_same_requests_as_given(waddleai, kwargs, param, code):
    waddleai.create(**kwargs)
    body = waddleai.fake.last_body
    for name, value in kwargs.items():
        assert body[name] == value


# --- failover never degrades a request -----------------------------------------------------------------
def test_failover_skips_a_provider_that_cannot_honour_the_request(fake_ollama, fake_openai):
    fake_openai.fail_status = 503
    settings = make_settings(ollama=fake_ollama, openai=fake_openai, ai_provider="waddleai",
                             fallback_provider="ollama", valid_api_keys=KEY)
    with running_app(settings) as app, openai.OpenAI(base_url=app.url + "/v1", api_key=KEY, max_retries=0) as sdk:
        with pytest.raises(openai.InternalServerError) as caught:  # WaddleAI's failure, not a degraded answer
            sdk.chat.completions.create(model="auto", messages=ASK, tools=[WEATHER], tool_choice="required")
        assert caught.value.status_code == 503 and fake_ollama.chat_requests == []
        completion = sdk.chat.completions.create(model="auto", messages=ASK, tools=[WEATHER])  # Ollama can
        assert completion.choices[0].message.content == fake_ollama.reply
        assert fake_ollama.last_body["tools"] == [WEATHER]


def test_the_first_provider_decides(fake_ollama, fake_openai):
    settings = make_settings(ollama=fake_ollama, openai=fake_openai, fallback_provider="waddleai",
                             valid_api_keys=KEY)
    with running_app(settings) as app, openai.OpenAI(base_url=app.url + "/v1", api_key=KEY, max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.chat.completions.create(model="llama3.2", messages=ASK, tools=[WEATHER], tool_choice="required")
        assert caught.value.param == "tool_choice"
        sdk.chat.completions.create(model="waddleai/gpt-4o-mini", messages=ASK, tools=[WEATHER],
                                    tool_choice="required")  # the client can choose WaddleAI
    assert fake_ollama.chat_requests == [] and fake_openai.last_body["tool_choice"] == "required"


# --- bad shapes: a 400 naming the field, on any provider -------------------------------------------------
BAD_SHAPES = [
    ("tools[0].function.name", {"tools": [{"type": "function", "function": {"parameters": {}}}]}),
    ("tools[0].function.name", {"tools": [{"type": "function", "function": {"name": "has space"}}]}),
    ("tools[0].type", {"tools": [{"type": "retrieval", "function": {"name": "f"}}]}),
    ("tool_choice", {"tool_choice": "sometimes", "tools": [WEATHER]}),
    ("tool_choice", {"tool_choice": "auto"}),  # without tools
    ("tool_choice", {"tool_choice": {"type": "function", "function": {"name": "other"}}, "tools": [WEATHER]}),
    ("tool_choice", {"tool_choice": {"type": "function", "function": {}}, "tools": [WEATHER]}),
    ("parallel_tool_calls", {"parallel_tool_calls": "sometimes"}),
    ("response_format.type", {"response_format": {"type": "xml"}}),
    ("response_format.json_schema", {"response_format": {"type": "json_schema"}}),
    ("response_format.json_schema.name", {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}),
    ("messages[1].tool_call_id", {"messages": [ASK[0], {"role": "tool", "content": "x"}]}),
    ("messages[0].tool_call_id", {"messages": [{"role": "user", "content": "x", "tool_call_id": "c"}]}),
    ("messages[0].tool_calls", {"messages": [{"role": "user", "content": "x", "tool_calls": HISTORY[1]["tool_calls"]}]}),
    ("messages[1].tool_calls[0].id", {"messages": [ASK[0], {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}),
    ("messages[0].name", {"messages": [{"role": "user", "content": "x", "name": 5}]}),
    ("seed", {"seed": "seven"}),
    ("seed", {"seed": 2**63}),
    ("frequency_penalty", {"frequency_penalty": 2.5}),
    ("presence_penalty", {"presence_penalty": -3}),
    ("logprobs", {"logprobs": "maybe"}),
    ("top_logprobs", {"top_logprobs": 21, "logprobs": True}),
    ("top_logprobs", {"top_logprobs": 2}),  # without logprobs
]


@pytest.mark.parametrize("param,change", BAD_SHAPES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(BAD_SHAPES)])
def test_bad_shapes_are_a_400_naming_the_field(setup, param, change):
    body = {"model": setup.model, "messages": ASK, **change}
    response = setup.app.http.post("/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["type"]) == (param, "invalid_request_error")
    assert setup.fake.chat_requests == []
