"""Reply cleaning (§3 step 8): trim, drop leaks, never mass-ping, cut at the limit."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings as hyp_settings, strategies as st

from config.settings import DEFAULT_SYSTEM_PROMPT
from interactions.cleaning import (
    ELLIPSIS, PLATFORM_LIMITS, ZWSP, clean_reply, neutralize_mass_mentions, platform_limit,
    truncate,
)

P = "\U0001f916 "  # the default prefix
LIVE_AT = re.compile(r"@(everyone|here)\b", re.IGNORECASE)
LIVE_SLACK = re.compile(r"<!(everyone|channel|here)>", re.IGNORECASE)


@pytest.mark.parametrize(
    ("platform", "limit"),
    [("twitch", 500), ("discord", 2000), ("slack", 4000), ("kick", 500), ("youtube", 500),
     ("TWITCH", 500), ("Discord", 2000), ("unknown", 500), ("", 500)],
)
def test_platform_limits(platform: str, limit: int) -> None:
    assert platform_limit(platform) == limit
    assert PLATFORM_LIMITS == {"twitch": 500, "discord": 2000, "slack": 4000}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  hello there  ", P + "hello there"),
        ("\n\thello\n", P + "hello"),
        ("Assistant: hi!", P + "hi!"),
        ("assistant:hi!", P + "hi!"),
        ("AI: hello", P + "hello"),
        ("Bot: hello", P + "hello"),
        ("**Assistant:** hello", P + "hello"),
        ("WaddleBot: hey friend", P + "hey friend"),
        ("@waddlebot: hey friend", P + "hey friend"),
        ("Hello Assistant: not a label", P + "Hello Assistant: not a label"),
        (P + "already prefixed", P + "already prefixed"),
        ("*bold* and _under_ and **strong**", P + "*bold* and _under_ and **strong**"),
        ("I <3 you & your <b>chat</b> > 9000", P + "I <3 you & your <b>chat</b> > 9000"),
        ("emoji 🎉🔥 PogChamp :) ¯\\_(ツ)_/¯", P + "emoji 🎉🔥 PogChamp :) ¯\\_(ツ)_/¯"),
        ("’quotes’ “here” — dash", P + "’quotes’ “here” — dash"),
    ],
)
def test_cleaning_steps(raw: str, expected: str) -> None:
    assert clean_reply(raw, platform="twitch", bot_name="WaddleBot") == expected


@pytest.mark.parametrize("raw", ["", "   ", "\n\n", None, "Assistant:", "Assistant:   ",
                                 DEFAULT_SYSTEM_PROMPT, DEFAULT_SYSTEM_PROMPT.upper(), P, P + "  "])
def test_nothing_usable_is_none(raw: str | None) -> None:
    assert clean_reply(raw, platform="discord", system_prompt=DEFAULT_SYSTEM_PROMPT) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (f"Sure! {DEFAULT_SYSTEM_PROMPT} Hi there!", "Sure! Hi there!"),
        (f"{DEFAULT_SYSTEM_PROMPT.lower()}\nHi there!", "Hi there!"),
        ("You are WaddleBot, a friendly, upbeat assistant in a live-stream chat. Hi!", "Hi!"),
        ("you are waddlebot, a friendly, upbeat   assistant in a\nlive-stream chat. Hi!", "Hi!"),
        ("Hi! Never claim to be a human.", "Hi!"),
        ("I answer briefly and kindly.", "I answer briefly and kindly."),  # short fragment kept
        ("Never claim", "Never claim"),
    ],
)
def test_leaked_system_prompt_removed(raw: str, expected: str) -> None:
    out = clean_reply(raw, platform="twitch", system_prompt=DEFAULT_SYSTEM_PROMPT)
    assert out == P + expected


def test_no_system_prompt_removes_nothing() -> None:
    assert clean_reply(DEFAULT_SYSTEM_PROMPT, platform="discord") == P + DEFAULT_SYSTEM_PROMPT


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hey @everyone look", f"hey @{ZWSP}everyone look"),
        ("@here now", f"@{ZWSP}here now"),
        ("@EVERYONE @Here", f"@{ZWSP}EVERYONE @{ZWSP}Here"),
        ("@everyones", f"@{ZWSP}everyones"),
        ("@@everyone", f"@@{ZWSP}everyone"),
        ("<!everyone> hi", f"@{ZWSP}everyone hi"),
        ("<!channel> hi", f"@{ZWSP}channel hi"),
        ("<!here> hi", f"@{ZWSP}here hi"),
        ("<!here|here> hi", f"@{ZWSP}here hi"),
        ("<!HERE>", f"@{ZWSP}HERE"),
        ("<!subteam^S123|@devs> hi", f"@{ZWSP}subteam hi"),
        ("<@&123456> hi", f"@{ZWSP}role hi"),
        ("@channel", f"@{ZWSP}channel"),
        ("mail me at me@example.com", "mail me at me@example.com"),
        ("hi @viewer42", "hi @viewer42"),
        ("<@12345> hi", "<@12345> hi"),
    ],
)
def test_mass_mentions_neutralised(raw: str, expected: str) -> None:
    for platform in ("twitch", "discord", "slack"):
        out = clean_reply(raw, platform=platform)
        assert out == P + expected
        assert not LIVE_AT.search(out) and not LIVE_SLACK.search(out)


def test_mention_hidden_in_prefix_and_body_is_neutralised() -> None:
    out = clean_reply("everyone hi", platform="discord", prefix="@")
    assert out == f"@{ZWSP}everyone hi"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a\n\n\n\nb", "a\n\nb"),
        ("a\n  \n\t\n \nb", "a\n\nb"),
        ("a\n\nb", "a\n\nb"),
        ("a\nb", "a\nb"),
        ("a\r\n\r\n\r\nb", "a\n\nb"),
    ],
)
def test_blank_line_runs_collapse_on_multiline_platforms(raw: str, expected: str) -> None:
    assert clean_reply(raw, platform="discord") == P + expected
    assert clean_reply(raw, platform="slack") == P + expected


@pytest.mark.parametrize("platform", ["twitch", "kick", "youtube"])
@pytest.mark.parametrize(("raw", "expected"), [("a\n\n\nb", "a b"), ("a \r\n b\nc", "a b c")])
def test_single_line_platforms_get_one_line(platform: str, raw: str, expected: str) -> None:
    assert clean_reply(raw, platform=platform) == P + expected


@pytest.mark.parametrize("platform", ["twitch", "discord", "slack", "kick", "youtube"])
def test_exactly_at_the_limit_is_not_cut(platform: str) -> None:
    limit = platform_limit(platform)
    body = "x" * (limit - len(P))
    assert clean_reply(body, platform=platform) == P + body


@pytest.mark.parametrize("platform", ["twitch", "discord", "slack", "kick", "youtube"])
def test_cut_on_a_word_boundary_counting_the_prefix(platform: str) -> None:
    limit = platform_limit(platform)
    out = clean_reply("word " * 1000, platform=platform)
    assert out is not None
    assert len(out) <= limit
    assert out.startswith(P) and out.endswith("word" + ELLIPSIS)
    assert len(out) >= limit - 6  # at most one word lost
    assert all(w == "word" for w in out[len(P):-1].split())


@pytest.mark.parametrize("platform", ["twitch", "discord"])
def test_one_char_over_cuts_the_last_word(platform: str) -> None:
    limit = platform_limit(platform)
    body = "a" * (limit - len(P) - 6) + " tail!!"  # one char too long
    out = clean_reply(body, platform=platform)
    assert out == P + "a" * (limit - len(P) - 6) + ELLIPSIS


def test_no_space_in_range_hard_cuts() -> None:
    out = clean_reply("x" * 600, platform="twitch")
    assert out == P + "x" * (500 - len(P) - 1) + ELLIPSIS
    assert len(out) == 500


def test_cut_drops_trailing_comma_before_ellipsis() -> None:
    body = "b" * 480 + ", " + "c" * 40
    assert clean_reply(body, platform="twitch") == P + "b" * 480 + ELLIPSIS


def test_custom_and_empty_prefix_count_toward_the_limit() -> None:
    out = clean_reply("word " * 200, platform="twitch", prefix="[AI] ")
    assert out is not None and out.startswith("[AI] word") and len(out) <= 500
    out = clean_reply("word " * 200, platform="twitch", prefix="")
    assert out is not None and out.startswith("word") and len(out) <= 500


@pytest.mark.parametrize(
    ("line", "limit", "keep", "expected"),
    [
        ("hello world", 20, 0, "hello world"),
        ("hello world", 10, 0, "hello" + ELLIPSIS),
        ("hello world", 6, 0, "hello" + ELLIPSIS),
        ("helloworld", 6, 0, "hello" + ELLIPSIS),
        ("P: helloworld", 8, 3, "P: hell" + ELLIPSIS),  # never cut back into the prefix
        ("abc", 1, 0, "a"),
    ],
)
def test_truncate(line: str, limit: int, keep: int, expected: str) -> None:
    out = truncate(line, limit, keep)
    assert out == expected and len(out) <= limit


def test_neutralize_is_idempotent() -> None:
    once = neutralize_mass_mentions("@everyone <!here> @here")
    assert neutralize_mass_mentions(once) == once


PLATFORMS = st.sampled_from(["twitch", "discord", "slack", "kick", "youtube", "other"])
CHATTY = st.lists(
    st.sampled_from(list("ab @!<>|^&\n\t.,*_") + ["everyone", "here", "channel", "<!", ZWSP]),
    max_size=200,
).map("".join)


@hyp_settings(max_examples=400, deadline=None)
@given(text=st.one_of(st.text(max_size=5000), CHATTY), platform=PLATFORMS,
       prefix=st.sampled_from([P, "", "@", "[bot] "]))
def test_output_fits_and_never_mass_pings(text: str, platform: str, prefix: str) -> None:
    out = clean_reply(text, platform=platform, prefix=prefix, system_prompt=DEFAULT_SYSTEM_PROMPT)
    if out is not None:
        assert len(out) <= platform_limit(platform)
        assert out.strip()
        assert LIVE_AT.search(out) is None
        assert LIVE_SLACK.search(out) is None


@hyp_settings(max_examples=200, deadline=None)
@given(words=st.lists(st.from_regex(r"[a-z]{1,12}", fullmatch=True), min_size=1, max_size=400))
def test_cut_keeps_whole_words(words: list[str]) -> None:
    out = clean_reply(" ".join(words), platform="twitch")
    assert out is not None
    if out.endswith(ELLIPSIS):
        kept = out[len(P):-1].split()
        assert kept == words[: len(kept)]
    else:
        assert out == P + " ".join(words)
