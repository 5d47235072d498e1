"""What a provider cannot honour: `UnsupportedParameter`, raised before any call to it.

A request parameter the chosen provider cannot carry out (Ollama and `tool_choice: "required"`,
say) is refused with the parameter's name, never dropped: the OpenAI API answers it as a 400 whose
`param` names it (web/errors.py). It does not count for the breaker and never reaches the backend.
"""

from __future__ import annotations

from llm.types import ProviderError


class UnsupportedParameter(ProviderError):
    """`param` is the request's path to it, as OpenAI names one: "tool_choice", "messages[2].name"."""

    def __init__(self, message: str, *, provider: str, param: str, code: str = "unsupported_parameter") -> None:
        super().__init__(message, provider=provider, status=400, counts_for_breaker=False, kind="unsupported")
        self.param = param
        self.code = code  # unsupported_parameter | unsupported_value (OpenAI's codes)
