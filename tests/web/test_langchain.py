"""LangChain's ChatOpenAI against the OpenAI-compatible API (§8): `bind_tools` gets the model's tool
calls back, and a tool turn goes round again, on both providers."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.web.completion_apps import KEY



@tool
def get_weather(city: str, days: int | None = None) -> str:
    """The weather in a city.

    Args:
        city: the city
        days: how many days ahead
    """
    return f"sunny in {city}"


@pytest.fixture
def chat(setup):
    return ChatOpenAI(base_url=setup.app.url + "/v1", api_key=KEY, model=setup.model, max_retries=0), setup.fake


@pytest.mark.parametrize("streaming", [False, True])
def test_bind_tools_gets_the_tool_calls(chat, streaming):
    llm, fake = chat
    fake.reply, fake.tool_calls = "", [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    bound = llm.bind_tools([get_weather])
    if streaming:
        message = None
        for chunk in bound.stream("Weather in Paris?"):
            message = chunk if message is None else message + chunk
    else:
        message = bound.invoke("Weather in Paris?")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert message.response_metadata["finish_reason"] == "tool_calls"
    sent = fake.last_body["tools"][0]["function"]
    assert sent["name"] == "get_weather" and sent["parameters"]["required"] == ["city"]

    fake.tool_calls = []
    question = HumanMessage("Weather in Paris?")
    answer = bound.invoke([question, message, ToolMessage("sunny", tool_call_id=message.tool_calls[0]["id"])])
    assert answer.content == fake.reply
    turns = fake.last_body["messages"]
    assert turns[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert turns[2]["content"] == "sunny"
