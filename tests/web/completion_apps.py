"""The app on one provider, as the OpenAI-compatible API's tests drive it (the fixtures that build it
are in tests/web/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import openai
from tests.fakes.fake_ollama import FakeUpstream

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODELS = {"ollama": "llama3.2", "waddleai": "gpt-4o-mini"}


@dataclass
class Setup:
    provider: str
    model: str
    fake: FakeUpstream
    app: Any
    ask: list[dict[str, Any]] = field(default_factory=lambda: [{"role": "user", "content": "Hello?"}])

    def sdk(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.app.url + "/v1", api_key=KEY, max_retries=0)

    def create(self, **kwargs: Any) -> Any:
        with self.sdk() as sdk:
            return sdk.chat.completions.create(model=self.model, **{"messages": self.ask, **kwargs})

    def post(self, **body: Any) -> Any:
        return self.app.http.post("/v1/chat/completions", json={"model": self.model, "messages": self.ask, **body},
                                  headers=AUTH)
