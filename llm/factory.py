"""Build a provider by name from the settings (AI_PROVIDER / FALLBACK_PROVIDER), or for a
community's own endpoint (llm/endpoints.py).

Backends are imported only when configured: the `openai` package alone costs ~0.4 s of start-up
and tens of MB of resident memory, which a deployment on Ollama should not pay.
"""

from __future__ import annotations

import importlib
from typing import Any

from llm.types import Provider

PROVIDERS = {"ollama": ("llm.ollama", "OllamaProvider"),
             "waddleai": ("llm.waddleai", "WaddleAIProvider")}


def _provider_class(name: str) -> Any:
    try:
        module, cls = PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}; expected one of {sorted(PROVIDERS)}") from None
    return getattr(importlib.import_module(module), cls)


def build_provider(name: str, settings: Any) -> Provider:
    """One long-lived provider (and HTTP client); the caller must `await provider.aclose()`."""
    return _provider_class(name).from_settings(settings)


def build_endpoint_provider(name: str, settings: Any, base_url: str | None, api_key: str | None) -> Provider:
    """A provider for a community's endpoint: its `base_url` (None: the service's own URL for this
    provider, with the service's TLS settings and preferred model) and its `api_key` (None: none
    sent). The default model and timeout are the service's; so are WADDLEAI_EXTRA_HEADERS on the
    service's own URL. A community's own URL is called
    without following redirects: a redirect could lead to an address `base_url` may not name."""
    cls = _provider_class(name)
    own = base_url is not None
    if name == "ollama":
        verify: bool | str = True
        if not own:
            verify = bool(settings.ollama_verify_ssl) and (settings.ollama_cert_path or True)
        return cls(base_url or settings.ollama_url, settings.ollama_model, settings.request_timeout,
                   verify=verify, api_key=api_key, follow_redirects=not own)
    # The service's own URL also gets its WADDLEAI_EXTRA_HEADERS (a proxy such as Portkey needs them),
    # but not an Authorization among them: the community's key is the one sent. A community's own
    # URL gets none of them: they may hold the service's secrets.
    headers = {} if own else {name: value.get_secret_value() for name, value
                              in settings.waddleai_extra_headers.items() if name.lower() != "authorization"}
    return cls(base_url or settings.waddleai_base_url, settings.waddleai_model, settings.request_timeout,
               api_key=api_key, preferred_model=None if own else settings.waddleai_preferred_model,
               extra_headers=headers, follow_redirects=not own)
