"""Build a provider by name from the settings (AI_PROVIDER / FALLBACK_PROVIDER).

Backends are imported only when configured: the `openai` package alone costs ~0.4 s of start-up
and tens of MB of resident memory, which a deployment on Ollama should not pay.
"""

from __future__ import annotations

import importlib
from typing import Any

from llm.types import Provider

PROVIDERS = {"ollama": ("llm.ollama", "OllamaProvider"),
             "waddleai": ("llm.waddleai", "WaddleAIProvider")}


def build_provider(name: str, settings: Any) -> Provider:
    """One long-lived provider (and HTTP client); the caller must `await provider.aclose()`."""
    try:
        module, cls = PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}; expected one of {sorted(PROVIDERS)}") from None
    return getattr(importlib.import_module(module), cls).from_settings(settings)
