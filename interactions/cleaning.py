"""Turn a raw LLM answer into the chat line that is posted (§3 step 8).

Pure and cheap: the patterns that depend on the configuration (system prompt, bot name) are
compiled once per distinct value and cached. Text is never HTML-escaped or markdown-stripped.
"""

from __future__ import annotations

import functools
import re

PLATFORM_LIMITS: dict[str, int] = {"twitch": 500, "discord": 2000, "slack": 4000}
DEFAULT_LIMIT = 500
# Platforms whose chat shows several lines; elsewhere (Twitch/Kick/YouTube, IRC-like chats where
# a newline would end or split the message) every line break becomes a space.
MULTILINE_PLATFORMS = frozenset({"discord", "slack"})
ELLIPSIS = "\u2026"
ZWSP = "\u200b"

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_MIN_LEAKED_SENTENCE = 25
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")  # 2+ blank lines
_LINE_BREAKS = re.compile(r"\s*\n\s*")
_SPACE_RUNS = re.compile(r"[ \t]{2,}")
# "@everyone" / "@here" (also "@everyoneee": Discord pings on the prefix); "@channel" for Slack.
_AT_MASS = re.compile(r"@(everyone|here|channel)", re.IGNORECASE)
# Slack special mentions: <!everyone>, <!channel>, <!here>, <!here|label>, <!subteam^ID|@team>.
_SLACK_SPECIAL = re.compile(r"<!([^<>|^]*)[^<>]*>")
# Discord role mentions ping a whole role: <@&123>.
_DISCORD_ROLE = re.compile(r"<@&(\d*)>")
# A lone UTF-16 surrogate (a provider's JSON may carry "\ud83d" alone, e.g. half an emoji cut by a
# token boundary): it cannot be encoded as UTF-8, so the reply could be neither posted nor stored.
_SURROGATE = re.compile("[\ud800-\udfff]")


def platform_limit(platform: str) -> int:
    return PLATFORM_LIMITS.get((platform or "").strip().lower(), DEFAULT_LIMIT)


@functools.lru_cache(maxsize=128)
def _leak_pattern(system_prompt: str) -> re.Pattern[str] | None:
    """The whole prompt and each of its sentences of >= 25 chars, whitespace-tolerant."""
    prompt = system_prompt.strip()
    if not prompt:
        return None
    pieces = {prompt} | {
        s.strip() for s in _SENTENCE_END.split(prompt) if len(s.strip()) >= _MIN_LEAKED_SENTENCE
    }
    alternatives = [
        r"\s+".join(re.escape(word) for word in piece.split())
        for piece in sorted(pieces, key=len, reverse=True)
    ]
    return re.compile("|".join(alternatives), re.IGNORECASE)


@functools.lru_cache(maxsize=128)
def _label_pattern(bot_name: str) -> re.Pattern[str]:
    """A leading role label: "Assistant:", "AI:", "Bot:", "**WaddleBot:**", "@WaddleBot:"."""
    names = ["assistant", "ai", "bot"]
    if bot_name.strip().lstrip("@"):
        names.insert(0, re.escape(bot_name.strip().lstrip("@")))
    return re.compile(
        r"^[*_]{0,2}@?(?:%s)[*_]{0,2}\s*:[*_]{0,2}\s*" % "|".join(names), re.IGNORECASE
    )


def neutralize_mass_mentions(text: str) -> str:
    """Make @everyone/@here/<!channel>… show as text without pinging anyone."""
    text = _SLACK_SPECIAL.sub(lambda m: f"@{ZWSP}{m.group(1) or 'here'}", text)
    text = _DISCORD_ROLE.sub(f"@{ZWSP}role", text)
    return _AT_MASS.sub(lambda m: f"@{ZWSP}{m.group(1)}", text)


def truncate(line: str, limit: int, keep: int = 0) -> str:
    """Cut `line` to `limit` chars on a word boundary, ending with "…" when cut.

    The first `keep` chars (the prefix) are never used as the cut point; with no whitespace in
    range the text is hard-cut.
    """
    if len(line) <= limit:
        return line
    if limit <= len(ELLIPSIS):
        return line[:limit]
    budget = limit - len(ELLIPSIS)
    head = line[:budget]
    floor = len(line[:keep].rstrip())  # shortest acceptable result: the prefix alone is not
    if not line[budget].isspace():  # the cut falls inside a word: back up to a space
        cut = next((i for i in range(budget - 1, keep - 1, -1) if head[i].isspace()), -1)
        if cut > 0 and len(head[:cut].rstrip()) > floor:
            head = head[:cut]
    trimmed = head.rstrip().rstrip(",;:").rstrip()
    if len(trimmed) <= floor:  # no usable word boundary: hard-cut
        trimmed = line[:budget]
    return trimmed + ELLIPSIS


def clean_reply(
    text: str | None,
    *,
    platform: str,
    prefix: str = "\U0001f916 ",
    system_prompt: str = "",
    bot_name: str = "",
) -> str | None:
    """The final chat line (prefix included), or None when nothing usable remains."""
    body = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    body = _SURROGATE.sub("\ufffd", body)
    leak = _leak_pattern(system_prompt) if system_prompt else None
    if leak is not None and body:
        removed = leak.sub("", body)
        if removed != body:
            body = _SPACE_RUNS.sub(" ", removed).strip()
    body = _label_pattern(bot_name).sub("", body, count=1).strip()
    if prefix.strip() and body.startswith(prefix.strip()):  # the model echoed the prefix
        body = body[len(prefix.strip()):].strip()
    if (platform or "").strip().lower() in MULTILINE_PLATFORMS:
        body = _BLANK_LINES.sub("\n\n", body)
    else:
        body = _LINE_BREAKS.sub(" ", body)
    if not body.strip(f" \t\n{ZWSP}"):
        return None
    line = neutralize_mass_mentions(prefix + body)
    return truncate(line, platform_limit(platform), keep=len(prefix))
