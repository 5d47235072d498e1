"""The rest of OpenAI's chat-completions request (§8 fidelity), through the official openai SDK:
every parameter this service does not interpret (web/openai_models.py PASSED_ON) reaches WaddleAI
unchanged, as the SDK's typed parameter, and is mapped or refused by name on Ollama; the
`developer` role reaches WaddleAI as `developer`; what WaddleAI answers beyond text and tool calls
(a legacy `function_call`, `audio`, `annotations`, `service_tier`, …) comes back as it sent it."""

from __future__ import annotations

import inspect
import json
from typing import Any

import openai
import pytest
from openai.resources.chat.completions import Completions

from web.openai_models import PASSED_ON

ASK = [{"role": "user", "content": "What is new?"}]
WEATHER_FN = {"name": "get_weather", "description": "The weather in a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
# one value of each PASSED_ON parameter, as a client sends it
PASSED = {
    "logit_bias": {"50256": -100, "198": 5},
    "reasoning_effort": "high",
    "functions": [WEATHER_FN],
    "function_call": {"name": "get_weather"},
    "modalities": ["text", "audio"],
    "audio": {"format": "wav", "voice": "alloy"},
    "prediction": {"type": "content", "content": "The weather is sunny."},
    "service_tier": "flex",
    "store": True,
    "metadata": {"team": "bots", "run": "42"},
    "moderation": {"model": "omni-moderation-latest"},
    "prompt_cache_key": "chat-7",
    "prompt_cache_options": {"mode": "implicit", "ttl": "30m"},
    "prompt_cache_retention": "24h",
    "safety_identifier": "user-hash-1",
    "user": "viewer-9",
    "verbosity": "low",
    "web_search_options": {"search_context_size": "low",
                           "user_location": {"type": "approximate", "approximate": {"city": "Oslo"}}},
}
LEGACY_HISTORY = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
    {"role": "function", "name": "get_weather", "content": "18 C"},
]


@pytest.fixture
def ask() -> list[dict[str, Any]]:
    return ASK


def test_passed_on_is_every_other_parameter_of_the_sdk():
    """PASSED_ON and the parameters this service models cover OpenAI's whole request, and each
    PASSED_ON name is a typed parameter of the installed SDK (so none needs `extra_body`)."""
    typed = set(inspect.signature(Completions.create).parameters) - {"self", "extra_headers", "extra_query",
                                                                     "extra_body", "timeout"}
    assert set(PASSED_ON) <= typed
    assert set(PASSED) == set(PASSED_ON)


# --- WaddleAI: as given -----------------------------------------------------------------------------
def test_every_passed_on_parameter_reaches_waddleai_unchanged(waddleai):
    waddleai.create(**PASSED)
    body = waddleai.fake.last_body
    assert {name: body.get(name) for name in PASSED} == PASSED


def test_passed_on_parameters_reach_waddleai_in_a_stream_too(waddleai):
    chosen = {name: PASSED[name] for name in ("reasoning_effort", "logit_bias", "verbosity", "user", "metadata")}
    with waddleai.sdk() as sdk:
        text = "".join(c.choices[0].delta.content or "" for c in sdk.chat.completions.create(
            model=waddleai.model, messages=ASK, stream=True, **chosen) if c.choices)
    assert text == waddleai.fake.reply
    body = waddleai.fake.last_body
    assert {name: body.get(name) for name in chosen} == chosen and body["stream"] is True


def test_null_parameters_are_not_asked_for(waddleai):
    response = waddleai.post(logit_bias=None, reasoning_effort=None, metadata=None)
    assert response.status_code == 200, response.text
    assert not {"logit_bias", "reasoning_effort", "metadata"} & set(waddleai.fake.last_body)


def test_the_developer_role_reaches_waddleai_as_developer(waddleai):
    messages = [{"role": "developer", "content": "be terse"}, *ASK]
    waddleai.create(messages=messages)
    assert waddleai.fake.last_body["messages"] == messages


PARTS = [{"role": "user", "content": [
    {"type": "text", "text": "Long shared preamble."},
    {"type": "text", "text": "The question.", "prompt_cache_breakpoint": {"mode": "explicit", "ttl": "30m"}}]}]


def test_content_parts_reach_waddleai_as_given(waddleai):
    waddleai.create(messages=PARTS)
    assert waddleai.fake.last_body["messages"] == PARTS


def test_content_parts_are_joined_for_ollama_and_a_breakpoint_is_refused(ollama):
    plain = [{"role": "user", "content": [{k: v for k, v in part.items() if k != "prompt_cache_breakpoint"}
                                          for part in PARTS[0]["content"]]}]
    ollama.create(messages=plain)
    assert ollama.fake.last_body["messages"] == [{"role": "user", "content": "Long shared preamble.\nThe question."}]
    with pytest.raises(openai.BadRequestError) as caught:
        ollama.create(messages=PARTS)
    assert caught.value.param == "messages[0].content[1].prompt_cache_breakpoint"


def test_legacy_function_calling_round_trip_on_waddleai(waddleai):
    waddleai.fake.reply, waddleai.fake.function_call = "", {"name": "get_weather", "arguments": {"city": "Oslo"}}
    completion = waddleai.create(messages=LEGACY_HISTORY, functions=[WEATHER_FN], function_call="auto")
    choice = completion.choices[0]
    assert choice.finish_reason == "function_call" and choice.message.content is None
    assert (choice.message.function_call.name, json.loads(choice.message.function_call.arguments)) == \
        ("get_weather", {"city": "Oslo"})
    body = waddleai.fake.last_body
    assert body["messages"] == LEGACY_HISTORY and body["functions"] == [WEATHER_FN] and body["function_call"] == "auto"


def test_a_streamed_legacy_function_call_is_relayed_as_deltas(waddleai):
    waddleai.fake.reply, waddleai.fake.function_call = "", {"name": "get_weather", "arguments": {"city": "Oslo"}}
    with waddleai.sdk() as sdk:
        chunks = list(sdk.chat.completions.create(model=waddleai.model, messages=ASK, functions=[WEATHER_FN],
                                                  stream=True))
    calls = [c.choices[0].delta.function_call for c in chunks if c.choices and c.choices[0].delta.function_call]
    assert calls[0].name == "get_weather"
    assert json.loads("".join(call.arguments or "" for call in calls)) == {"city": "Oslo"}
    assert chunks[-1].choices[0].finish_reason == "function_call"


def test_what_waddleai_answers_besides_text_comes_back_as_sent(waddleai):
    audio = {"id": "audio_1", "data": "UklGRg==", "expires_at": 1900000000, "transcript": "Hello"}
    annotations = [{"type": "url_citation", "url_citation": {
        "url": "https://example.com", "title": "Example", "start_index": 0, "end_index": 5}}]
    waddleai.fake.message_extra = {"audio": audio, "annotations": annotations, "reasoning_content": "thought"}
    waddleai.fake.envelope = {"service_tier": "flex", "system_fingerprint": "fp_1"}
    raw = waddleai.post(modalities=["text", "audio"], audio=PASSED["audio"]).json()
    message = raw["choices"][0]["message"]
    assert (message["audio"], message["annotations"], message["reasoning_content"]) == \
        (audio, annotations, "thought")
    assert (raw["service_tier"], raw["system_fingerprint"]) == ("flex", "fp_1")
    completion = waddleai.create(service_tier="flex")  # and the SDK reads them
    assert completion.service_tier == "flex" and completion.choices[0].message.annotations[0].url_citation.title == \
        "Example"


def test_a_stream_carries_the_upstreams_chunk_fields(waddleai):
    waddleai.fake.envelope = {"service_tier": "priority", "system_fingerprint": "fp_2"}
    with waddleai.sdk() as sdk:
        chunks = list(sdk.chat.completions.create(model=waddleai.model, messages=ASK, stream=True,
                                                  service_tier="priority"))
    assert {(c.service_tier, c.system_fingerprint) for c in chunks} == {("priority", "fp_2")}


# --- Ollama: mapped, or refused by name ----------------------------------------------------------------
@pytest.mark.parametrize("effort,think", [("none", False), ("low", "low"), ("medium", "medium"), ("high", "high")])
def test_reasoning_effort_is_ollamas_think(ollama, effort, think):
    ollama.create(reasoning_effort=effort)
    assert ollama.fake.last_body["think"] == think


def test_ollamas_thinking_comes_back_as_reasoning_content(ollama):
    ollama.fake.thinking = "The user greets me."
    raw = ollama.post(reasoning_effort="low").json()
    assert raw["choices"][0]["message"]["reasoning_content"] == "The user greets me."
    assert raw["choices"][0]["message"]["content"] == ollama.fake.reply
    with ollama.sdk() as sdk:
        chunks = list(sdk.chat.completions.create(model=ollama.model, messages=ASK, stream=True,
                                                  reasoning_effort="low"))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert [d.model_extra.get("reasoning_content") for d in deltas if d.model_extra.get("reasoning_content")] == \
        ["The user greets me."]
    assert "".join(d.content or "" for d in deltas) == ollama.fake.reply


def test_what_ollama_does_anyway_is_accepted(ollama):
    completion = ollama.create(modalities=["text"], service_tier="default", store=False, logit_bias={}, metadata={},
                               user="viewer-9", safety_identifier="user-hash-1")
    assert completion.choices[0].message.content == ollama.fake.reply
    body = ollama.fake.last_body
    assert not {"modalities", "service_tier", "store", "logit_bias", "metadata", "user", "think"} & set(body)


def test_the_developer_role_is_a_system_message_on_ollama(ollama):
    ollama.create(messages=[{"role": "developer", "content": "be terse"}, *ASK])
    assert ollama.fake.last_body["messages"][0] == {"role": "system", "content": "be terse"}


REFUSED_ON_OLLAMA = [
    ({"logit_bias": PASSED["logit_bias"]}, "logit_bias", "unsupported_parameter"),
    ({"reasoning_effort": "minimal"}, "reasoning_effort", "unsupported_value"),
    ({"reasoning_effort": "xhigh"}, "reasoning_effort", "unsupported_value"),
    ({"functions": [WEATHER_FN]}, "functions", "unsupported_parameter"),
    ({"functions": [WEATHER_FN], "function_call": "auto"}, "functions", "unsupported_parameter"),
    ({"modalities": ["text", "audio"]}, "modalities", "unsupported_value"),
    ({"audio": PASSED["audio"]}, "audio", "unsupported_parameter"),
    ({"prediction": PASSED["prediction"]}, "prediction", "unsupported_parameter"),
    ({"service_tier": "flex"}, "service_tier", "unsupported_value"),
    ({"store": True}, "store", "unsupported_value"),
    ({"metadata": PASSED["metadata"]}, "metadata", "unsupported_parameter"),
    ({"moderation": PASSED["moderation"]}, "moderation", "unsupported_parameter"),
    ({"prompt_cache_key": "chat-7"}, "prompt_cache_key", "unsupported_parameter"),
    ({"prompt_cache_options": PASSED["prompt_cache_options"]}, "prompt_cache_options", "unsupported_parameter"),
    ({"prompt_cache_retention": "24h"}, "prompt_cache_retention", "unsupported_parameter"),
    ({"verbosity": "low"}, "verbosity", "unsupported_parameter"),
    ({"web_search_options": PASSED["web_search_options"]}, "web_search_options", "unsupported_parameter"),
    ({"messages": LEGACY_HISTORY[:2]}, "messages[1].function_call", "unsupported_parameter"),
    ({"messages": [ASK[0], LEGACY_HISTORY[2]]}, "messages[1].role", "unsupported_value"),
    ({"messages": [ASK[0], {"role": "assistant", "content": None, "refusal": "I can't."}, ASK[0]]},
     "messages[1].refusal", "unsupported_parameter"),
    ({"messages": [ASK[0], {"role": "assistant", "content": None, "audio": {"id": "audio_1"}}, ASK[0]]},
     "messages[1].audio", "unsupported_parameter"),
]
REFUSED_IDS = [f"{param}-{i}" for i, (_, param, _) in enumerate(REFUSED_ON_OLLAMA)]


@pytest.mark.parametrize("kwargs,param,code", REFUSED_ON_OLLAMA, ids=REFUSED_IDS)
def test_what_ollama_cannot_honour_is_a_400_naming_it(ollama, kwargs, param, code):
    with pytest.raises(openai.BadRequestError) as caught:
        ollama.create(**kwargs)
    assert (caught.value.param, caught.value.code, caught.value.type) == (param, code, "invalid_request_error")
    assert f"Ollama cannot honour '{param}'" in caught.value.message
    assert ollama.fake.chat_requests == []


@pytest.mark.parametrize("kwargs,param,code", REFUSED_ON_OLLAMA, ids=REFUSED_IDS)
def test_waddleai_takes_what_ollama_refuses_as_given(waddleai, kwargs, param, code):
    waddleai.create(**kwargs)
    body = waddleai.fake.last_body
    assert {name: body[name] for name in kwargs} == kwargs


# --- stream_options.include_obfuscation: honoured by this service's own stream --------------------------
def test_include_obfuscation_pads_every_chunk_when_asked(setup):
    with setup.sdk() as sdk:
        padded = list(sdk.chat.completions.create(model=setup.model, messages=ASK, stream=True,
                                                  stream_options={"include_obfuscation": True}))
        plain = list(sdk.chat.completions.create(model=setup.model, messages=ASK, stream=True))
    assert all(c.obfuscation for c in padded) and len({c.obfuscation for c in padded}) > 1
    assert "".join(c.choices[0].delta.content or "" for c in padded) == setup.fake.reply
    assert all(c.obfuscation is None for c in plain)
    assert "include_obfuscation" not in json.dumps(setup.fake.last_body)  # our own hop, not the upstream's


# --- bad shapes: a 400 naming the field, on any provider -----------------------------------------------
BAD_SHAPES = [
    ("logit_bias", {"logit_bias": {"50256": 101}}),
    ("logit_bias", {"logit_bias": {"hello": 1}}),
    ("reasoning_effort", {"reasoning_effort": "extreme"}),
    ("functions[0].name", {"functions": [{"description": "no name"}]}),
    ("function_call", {"function_call": {"name": "other"}, "functions": [WEATHER_FN]}),
    ("function_call", {"function_call": "always"}),
    ("modalities[0]", {"modalities": ["video"]}),
    ("service_tier", {"service_tier": "gold"}),
    ("store", {"store": "sometimes"}),
    ("metadata", {"metadata": {"k": "v" * 513}}),
    ("metadata.k", {"metadata": {"k": 5}}),
    ("safety_identifier", {"safety_identifier": "x" * 129}),
    ("verbosity", {"verbosity": "chatty"}),
    ("web_search_options", {"web_search_options": "on"}),
    ("stream_options", {"stream_options": {"include_usage": True}}),  # without stream
    ("stream_options.include_obfuscation", {"stream": True, "stream_options": {"include_obfuscation": "sometimes"}}),
    ("messages[1].name", {"messages": [ASK[0], {"role": "function", "content": "18 C"}]}),
    ("messages[0].refusal", {"messages": [{"role": "user", "content": "x", "refusal": "no"}]}),
    ("messages[0].function_call", {"messages": [{"role": "user", "content": "x",
                                                 "function_call": {"name": "f", "arguments": "{}"}}]}),
    ("messages[1].audio.id", {"messages": [ASK[0], {"role": "assistant", "content": "x", "audio": {}}]}),
    ("messages[0].content", {"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "cache": 1}]}]}),
]


@pytest.mark.parametrize("param,change", BAD_SHAPES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(BAD_SHAPES)])
def test_bad_shapes_are_a_400_naming_the_field(setup, param, change):
    response = setup.post(**change)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["type"]) == (param, "invalid_request_error")
    assert setup.fake.chat_requests == []
