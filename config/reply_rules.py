"""The parsing and checking of two reply rules, shared by the settings and the per-community PUT:
the reply blocklist (§3 step 12) and the model per trigger (§4).

- A blocklist entry is a word or phrase (matched as whole words, like triggers) or `/regex/`
  (matched anywhere, case-insensitively, on the normalised reply). A variable holding entries is
  comma-separated, or a JSON list when an entry needs a comma (`["/a{1,3}/", "word"]`).
- A model per trigger maps a trigger (mention, greeting, farewell, question, event) or an event type
  (subscription, follow, …) to a model name: `greeting=qwen2.5:0.5b,event=qwen2.5:0.5b`, or a JSON object.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

MAX_ENTRIES = 500
MAX_ENTRY_LENGTH = 200
_KEY = re.compile(r"[a-z][a-z0-9_\-]{0,63}")


def _text_value(value: Any, opener: str, kind: str) -> Any:
    """A variable's text as JSON when it starts with `opener`, else its comma-separated parts (a list);
    a value that is not text (a PUT's JSON) as it is."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text.startswith(opener):
        return [part.strip() for part in text.split(",") if part.strip()]
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a JSON {kind}: {exc.msg}") from None


def split_entries(value: Any) -> list[str]:
    """A variable's text as a list: JSON when it looks like a list, else comma-separated."""
    value = _text_value(value, "[", "list")
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    return [v.strip() for v in value if v.strip()]


def is_pattern(entry: str) -> bool:
    return len(entry) > 2 and entry.startswith("/") and entry.endswith("/")


def blocklist_entries(values: Iterable[str]) -> tuple[str, ...]:
    """The entries, checked: each /regex/ must compile; raises ValueError naming the bad entry."""
    entries = tuple(dict.fromkeys(v.strip() for v in values if v and v.strip()))
    if len(entries) > MAX_ENTRIES:
        raise ValueError(f"at most {MAX_ENTRIES} entries")
    for entry in entries:
        if len(entry) > MAX_ENTRY_LENGTH:
            raise ValueError(f"entry longer than {MAX_ENTRY_LENGTH} characters: {entry[:40]!r}…")
        if is_pattern(entry):
            try:
                re.compile(entry[1:-1])
            except re.error as exc:
                raise ValueError(f"entry {entry!r} is not a valid regular expression: {exc}") from None
    return entries


def model_by_trigger(value: Any) -> dict[str, str]:
    """`greeting=model,event=model` (or a JSON object / dict) as a checked dict."""
    was_text = isinstance(value, str)
    value = _text_value(value, "{", "object")
    if was_text and isinstance(value, list):  # the variable's trigger=model pairs
        pairs = {}
        for part in value:
            key, sep, model = part.partition("=")
            if not sep:
                raise ValueError(f"{part!r} is not trigger=model")
            pairs[key] = model
        value = pairs
    if not isinstance(value, dict):
        raise ValueError("must be trigger=model pairs")
    out: dict[str, str] = {}
    for key, model in value.items():
        name = str(key).strip().lower()
        if not _KEY.fullmatch(name):
            raise ValueError(f"{key!r} is not a trigger or event type")
        if not isinstance(model, str) or not model.strip() or len(model.strip()) > 200:
            raise ValueError(f"the model for {name!r} must be a non-empty name")
        out[name] = model.strip()
    return out
