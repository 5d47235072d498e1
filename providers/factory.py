"""Build a provider by name from the settings (AI_PROVIDER / FALLBACK_PROVIDER)."""

from __future__ import annotations

from typing import Any

from providers.base import Provider
from providers.ollama import OllamaProvider
from providers.waddleai import WaddleAIProvider

PROVIDERS = {"ollama": OllamaProvider, "waddleai": WaddleAIProvider}


def build_provider(name: str, settings: Any) -> Provider:
    """One long-lived provider (and HTTP client); the caller must `await provider.aclose()`."""
    try:
        cls = PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}; expected one of {sorted(PROVIDERS)}") from None
    return cls.from_settings(settings)
