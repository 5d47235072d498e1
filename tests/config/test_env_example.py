""".env.example read the way `docker run --env-file` reads it: every KEY=VALUE line literally."""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings
from tests.support import IsolatedSettings, docker_env_file

ROOT = Path(__file__).resolve().parents[2]


def test_docker_literal_values_give_the_documented_defaults(monkeypatch):
    values = docker_env_file((ROOT / ".env.example").read_text(encoding="utf-8"))
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    defaults = IsolatedSettings().model_dump()
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    literal = IsolatedSettings().model_dump()
    assert {k: v for k, v in literal.items() if v != defaults[k]} == {}
    assert literal["response_prefix"] == "🤖 " and literal["router_api_url"] is None


def test_no_value_is_quoted_or_followed_by_a_comment():
    for key, value in docker_env_file((ROOT / ".env.example").read_text(encoding="utf-8")).items():
        assert not value.startswith(('"', "'")), f"{key}: docker keeps the quotes"
        assert " #" not in value, f"{key}: docker keeps a comment after the value"
        assert value == value.strip(), f"{key}: leading or trailing spaces are invisible and loaders differ"
