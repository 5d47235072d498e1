"""Replay a chat log through a running service and show, line by line, what it answered.

Each line of the file is the JSON body of `POST /api/v1/ai/interaction` (docs/api.md §2).

Two modes:

- **live** (the default): every line is posted to the service; a small loopback router started
  here (`--router-host`/`--router-port`) receives the replies, matched to their line by
  `Idempotency-Key` (the interaction id). The service must post its replies there:
  `ROUTER_API_URL=http://127.0.0.1:9000`. With `--admin-key` each line is first checked with the
  dry run, so lines that fire nothing are shown at once instead of waiting for a reply.
- **`--dry-run`**: nothing is posted; each line goes to `POST /api/v1/ai/triggers/check` (needs
  `--admin-key`) and the trigger, language and reason are shown. Safe against any deployment: no
  interaction, no LLM call, no reply reaches the chat.

    python -m examples.replay examples/chat.jsonl --url http://127.0.0.1:8005 --router-key K --admin-key A
    python -m examples.replay chat.jsonl --url https://ai.example.com --admin-key A --dry-run

Exit status: 0; 1 when a line the dry run said would be answered got no reply within `--wait`
seconds, or the service refused a line; 2 for a bad file or missing key.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Iterator

import httpx

from examples.loopback import LoopbackServer

DEFAULT_URL = "http://127.0.0.1:8005"
DEFAULT_CHAT = Path(__file__).with_name("chat.jsonl")


# --- the loopback router ------------------------------------------------------------------------
class _RouterHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "ReplyRouter._Server"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(data)
        except ValueError:
            body = None
        ok = self.path.endswith("/responses") and isinstance(body, dict)
        if ok:
            self.server.owner.record(self.headers.get("Idempotency-Key") or "", body)
        answer = b'{"success": true}' if ok else b'{"success": false}'
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


class ReplyRouter(LoopbackServer):
    """A stand-in router on loopback: records every reply posted to `/responses` by its key."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(_RouterHandler, "reply-router", host, port)
        self._arrived = threading.Condition()
        self.replies: dict[str, dict[str, Any]] = {}
        self.received: list[dict[str, Any]] = []  # every body, in arrival order

    @property
    def base_url(self) -> str:
        """The name the tests' helpers read a router's address by (tests/support.py, as for their fakes)."""
        return self.url

    def record(self, key: str, body: dict[str, Any]) -> None:
        with self._arrived:
            self.received.append(body)
            self.replies.setdefault(key or str(body.get("interaction_id")), body)
            self._arrived.notify_all()

    def wait_for(self, key: str, deadline: float) -> dict[str, Any] | None:
        """The reply posted under `key`, waiting until the monotonic `deadline` at most."""
        with self._arrived:
            self._arrived.wait_for(lambda: key in self.replies or time.monotonic() >= deadline,
                                   timeout=max(0.0, deadline - time.monotonic()))
            return self.replies.get(key)


# --- the replay ---------------------------------------------------------------------------------
@dataclass
class Result:
    """What happened to one chat line."""

    line: dict[str, Any]
    status: str = "not answered"  # answered | not answered | no reply | would answer | refused … | duplicate
    trigger: str | None = None
    language: str | None = None
    reason: str | None = None
    reply: str | None = None
    fallback: bool | None = None
    provider: str | None = None
    expected: bool | None = None  # the dry run's would_reply (None without an admin key)
    interaction_id: str | None = None
    error: str | None = None

    @property
    def answered(self) -> bool:
        return self.status == "answered"


@dataclass
class Replayer:
    url: str = DEFAULT_URL
    router_key: str | None = None
    admin_key: str | None = None
    wait: float = 15.0
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    def check(self, line: dict[str, Any]) -> dict[str, Any]:
        """The service's dry run for one line (trigger, language, reason)."""
        body: dict[str, Any] = {"message": line.get("message_content") or "",
                                "message_type": line.get("message_type") or "chatMessage",
                                "username": line.get("username") or "viewer"}
        if line.get("community_id") is not None:
            body["community_id"] = line["community_id"]
        answer = self.client.post(f"{self.url}/api/v1/ai/triggers/check", json=body,
                                  headers={"X-API-Key": self.admin_key or ""})
        answer.raise_for_status()
        return answer.json()["data"]

    def _checked(self, line: dict[str, Any]) -> Result:
        result = Result(line)
        if self.admin_key:
            data = self.check(line)
            result.trigger, result.language = data.get("trigger"), data.get("language")
            result.reason, result.expected = data.get("reason"), bool(data.get("would_reply"))
        return result

    def dry_run(self, lines: list[dict[str, Any]]) -> Iterator[Result]:
        """Only the dry run: nothing is posted anywhere."""
        for line in lines:
            result = self._checked(line)
            result.status = "would answer" if result.expected else "not answered"
            yield result

    def live(self, lines: list[dict[str, Any]], router: ReplyRouter) -> Iterator[Result]:
        """Post every line, then wait (one deadline for all) for each reply, in the chat's order."""
        run = uuid.uuid4().hex[:8]  # a replay of the same file is new chat, not a duplicate
        headers = {"X-Service-Key": self.router_key} if self.router_key else {}
        results = []
        for line in lines:
            result = self._checked(line)
            body = dict(line)
            if body.get("message_id"):
                body["message_id"] = f"{body['message_id']}-{run}"
            answer = self.client.post(f"{self.url}/api/v1/ai/interaction", json=body, headers=headers)
            if answer.status_code != 202:
                result.status = f"refused {answer.status_code}"
                result.error = answer.text[:200]
            else:
                data = answer.json()["data"]
                result.interaction_id = data["interaction_id"]
                if data.get("duplicate"):
                    result.status = "duplicate"
            results.append(result)
        deadline = time.monotonic() + self.wait
        for result in results:
            if result.interaction_id and result.status != "duplicate" and result.expected is not False:
                reply = router.wait_for(result.interaction_id, deadline)
                if reply is not None:
                    data = reply.get("response_data") or {}
                    result.status, result.reply = "answered", reply.get("chat_message") or data.get("message")
                    result.trigger = data.get("trigger_type") or result.trigger
                    result.fallback, result.provider = data.get("fallback"), data.get("provider")
                elif result.expected:
                    result.status = "no reply"
                elif result.expected is None:  # without the dry run: no trigger, or a rate limit
                    result.reason = f"no reply within {self.wait:g} s"
            yield result


# --- output -------------------------------------------------------------------------------------
def describe(index: int, result: Result) -> str:
    line = result.line
    kind = line.get("message_type") or "chatMessage"
    said = line.get("message_content") or ""
    text = f"[{kind}] {said}".strip() if kind != "chatMessage" else said
    mark = {"answered": "✔", "would answer": "✔", "not answered": "·"}.get(result.status, "✘")
    head = (f"{index:>3} {mark} {result.status:<13} {result.trigger or '-':<9} {result.language or '-':<3} "
            f"{line.get('username', '?')}: {text}")
    if result.reply is not None:
        source = "canned fallback" if result.fallback else (result.provider or "llm")
        return f"{head}\n{'':>6}↳ {result.reply}  ({source})"
    if result.reason and not result.expected:
        return f"{head}\n{'':>6}  ({result.reason})"
    if result.error:
        return f"{head}\n{'':>6}  {result.error}"
    return head


def summary(results: list[Result]) -> str:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return f"{len(results)} lines: " + ", ".join(f"{n} {status}" for status, n in counts.items())


def failed(results: list[Result]) -> bool:
    return any(r.status == "no reply" or r.status.startswith("refused") for r in results)


def read_chat(path: Path) -> list[dict[str, Any]]:
    lines = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if raw.strip():
            try:
                lines.append(json.loads(raw))
            except ValueError as error:
                raise SystemExit(f"{path}:{number}: not JSON ({error})") from None
    return lines


def run(replayer: Replayer, lines: list[dict[str, Any]], dry_run: bool, router: ReplyRouter | None,
        out: Any = None) -> list[Result]:
    """Replay and print each line as soon as its fate is known; returns the results."""
    out = out or sys.stdout
    results = []
    mode = "dry run (nothing posted)" if dry_run else f"live, replies to {router.url if router else '?'}"
    print(f"Replaying {len(lines)} lines against {replayer.url}: {mode}", file=out, flush=True)
    print(f"{'#':>3}   {'status':<13} {'trigger':<9} {'lng':<3} line", file=out)
    steps = replayer.dry_run(lines) if dry_run else replayer.live(lines, router)  # type: ignore[arg-type]
    for index, result in enumerate(steps, 1):
        results.append(result)
        print(describe(index, result), file=out, flush=True)
    print(summary(results), file=out, flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.replay",
                                     description="Replay a chat log (JSON lines) through a running service.")
    parser.add_argument("chat", nargs="?", type=Path, default=DEFAULT_CHAT, help="default: examples/chat.jsonl")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the service (default {DEFAULT_URL})")
    parser.add_argument("--router-key", help="sent as X-Service-Key (the service's ROUTER_SERVICE_KEY)")
    parser.add_argument("--admin-key", help="an ADMIN_API_KEYS key: the dry run per line (trigger, language)")
    parser.add_argument("--dry-run", action="store_true",
                        help="post nothing: only the trigger dry run per line (needs --admin-key)")
    parser.add_argument("--router-host", default="127.0.0.1", help="live mode: where the replies are received")
    parser.add_argument("--router-port", type=int, default=9000,
                        help="live mode (default 9000): start the service with ROUTER_API_URL=http://HOST:PORT")
    parser.add_argument("--wait", type=float, default=15.0, help="live mode: seconds to wait for the replies")
    args = parser.parse_args(argv)
    if args.dry_run and not args.admin_key:
        parser.error("--dry-run needs --admin-key (the service's ADMIN_API_KEYS)")
    if not args.chat.is_file():
        parser.error(f"no such file: {args.chat}")
    lines = read_chat(args.chat)
    replayer = Replayer(args.url.rstrip("/"), args.router_key, args.admin_key, args.wait)
    router = None if args.dry_run else ReplyRouter(args.router_host, args.router_port).start()
    try:
        results = run(replayer, lines, args.dry_run, router)
    except httpx.HTTPError as error:
        print(f"replay stopped: {error!r} from {args.url}", file=sys.stderr)
        return 1
    finally:
        replayer.client.close()
        if router:
            router.stop()
    return 1 if failed(results) else 0


if __name__ == "__main__":
    sys.exit(main())
