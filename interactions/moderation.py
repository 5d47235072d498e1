"""The reply blocklist (§3 step 12): does an LLM reply contain something the channel forbids?

Checked after cleaning and before posting. Entries are REPLY_BLOCKLIST plus the community's own
list (config/reply_rules.py says how they are written). A word or phrase matches as whole words of
the normalised reply (NFKC, case folded, like triggers), so "ass" never blocks "class"; one written
in a script without spaces (Japanese, Chinese, Korean) matches inside the run of text; `/regex/`
matches anywhere in the normalised reply. Built once per list and cached.
"""

from __future__ import annotations

import functools
import re

from config.reply_rules import is_pattern
from interactions.triggers import normalize

_CJK_ONLY = re.compile("[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf"
                       "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff ]+")


class Blocklist:
    def __init__(self, entries: tuple[str, ...]) -> None:
        self.entries = entries
        parts = []
        for entry in entries:
            if is_pattern(entry):
                parts.append(f"(?:{entry[1:-1]})")
                continue
            words = normalize(entry).split()
            if not words:
                continue
            phrase = r"\s+".join(re.escape(w) for w in words)
            parts.append(phrase if _CJK_ONLY.fullmatch(" ".join(words)) else rf"(?<!\w){phrase}(?!\w)")
        self._pattern = re.compile("|".join(parts), re.IGNORECASE) if parts else None

    def blocks(self, text: str) -> bool:
        """True when `text` holds a blocked word, phrase or pattern."""
        return self._pattern is not None and self._pattern.search(normalize(text)) is not None


@functools.lru_cache(maxsize=256)
def blocklist_for(entries: tuple[str, ...]) -> Blocklist:
    return Blocklist(entries)
