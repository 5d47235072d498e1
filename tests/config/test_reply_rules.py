"""REPLY_BLOCKLIST and MODEL_BY_TRIGGER: parsed and checked at start-up, naming the variable."""

from __future__ import annotations

import pytest

from config.reply_rules import blocklist_entries, model_by_trigger, split_entries
from config.settings import ConfigError, load_settings
from tests.support import IsolatedSettings


def test_model_by_trigger_pairs_and_json() -> None:
    assert model_by_trigger("greeting=qwen2.5:0.5b, EVENT=tiny") == {"greeting": "qwen2.5:0.5b", "event": "tiny"}
    assert model_by_trigger('{"raid": "m"}') == {"raid": "m"}
    assert model_by_trigger("") == {}


@pytest.mark.parametrize("bad", ["greeting", "greeting=", "=m", "gr eeting=m", "{not json", '["a"]'])
def test_model_by_trigger_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        model_by_trigger(bad)


def test_blocklist_csv_or_json() -> None:
    assert split_entries("a, b ,,c") == ["a", "b", "c"]
    assert split_entries('["/a{1,3}/", "word"]') == ["/a{1,3}/", "word"]
    assert blocklist_entries(["a", "a", " b "]) == ("a", "b")


@pytest.mark.parametrize("bad", [["/(/"], ["x" * 201], ["w"] * 0 + [f"w{i}" for i in range(501)]])
def test_blocklist_rejects(bad: list[str]) -> None:
    with pytest.raises(ValueError):
        blocklist_entries(bad)


@pytest.mark.parametrize(("variable", "value"), [("REPLY_BLOCKLIST", "/(/"), ("MODEL_BY_TRIGGER", "greeting"),
                                                  ("TRIGGER_LANGUAGES", "en,klingon")])
def test_bad_values_stop_start_up_naming_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path, variable: str,
                                                       value: str) -> None:
    monkeypatch.chdir(tmp_path)  # .env is read from the working directory: there is none here
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_settings_hold_the_parsed_rules() -> None:
    s = IsolatedSettings(model_by_trigger="greeting=small", reply_blocklist='["/a{1,3}b/", "bad word"]')
    assert s.model_by_trigger == {"greeting": "small"}
    assert s.reply_blocklist == ["/a{1,3}b/", "bad word"]


def test_model_by_trigger_is_no_secret_and_does_not_break_the_secret_scan() -> None:
    # Regression: secret_values() took every dict setting for WADDLEAI_EXTRA_HEADERS (SecretStr values),
    # so any MODEL_BY_TRIGGER made create_app() fail with AttributeError.
    s = IsolatedSettings(model_by_trigger="greeting=small-model-name", waddleai_extra_headers='{"x-key": "pk-long-secret"}')
    secrets = s.secret_values()
    assert "pk-long-secret" in secrets and "small-model-name" not in secrets
