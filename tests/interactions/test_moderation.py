"""The reply blocklist (§3 step 12): words, phrases and /regex/ entries on the normalised reply."""

from __future__ import annotations

import pytest

from interactions.moderation import blocklist_for

LIST = ("ass", "bad word", "/fr[e3]e\\s*v-?bucks/", "バカ", "씨발")


@pytest.mark.parametrize(("reply", "blocked"), [
    ("you ASS!", True),
    ("Ａｓｓ", True),                      # full-width letters are normalised
    ("class act, and a bass solo", False),  # never inside a longer word
    ("assess the situation", False),
    ("a BAD   word here", True),            # any spacing inside a phrase
    ("bad words", False),
    ("badword", False),
    ("get free vbucks now", True),
    ("FR3E V-BUCKS", True),
    ("free bucks", False),
    ("お前バカだな", True),                  # in-run for scripts without spaces
    ("이 씨발", True),
    ("Hello there, welcome!", False),
    ("", False),
])
def test_blocklist(reply: str, blocked: bool) -> None:
    assert blocklist_for(LIST).blocks(reply) is blocked


def test_an_empty_list_blocks_nothing() -> None:
    assert not blocklist_for(()).blocks("anything at all")


def test_lists_are_compiled_once() -> None:
    assert blocklist_for(LIST) is blocklist_for(LIST)
