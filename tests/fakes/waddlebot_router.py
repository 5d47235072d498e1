"""A strict fake of the published WaddleBot router (penguintechinc/waddlebot v1.2, Quart), built
from its source, for the two seams this service meets it at:

1. **Its reply endpoint** `POST /api/v1/router/responses`, validated with a copy of its
   `RouterResponseRequest` (processing/router_module/validation_models.py: the same field rules,
   `extra="forbid"`) and answered as its flask_core helpers do: `400 {"status": "error", "message":
   "Validation failed", "errors": [{field, message, type}]}` or `200 {"success": true, "data":
   {"message": "Response received"}, "timestamp"}`.
2. **Its command processor** (processing/router_module/services/command_processor.py), which calls
   a module for a `!`/`#` chat command: `process_event()` takes the first word as the command, looks
   it up in the command registry (exact match, prefix included), finds the channel's community, and
   `execute_command()` POSTs `{command, args (a string), user_id, entity_id, community_id (an
   integer), session_id, message}` to `{module_url}/api/v1/execute` with aiohttp,
   `X-Service-Key: SERVICE_API_KEY` when set, `ClientTimeout(total=ROUTER_REQUEST_TIMEOUT)` (30 s), up
   to 3 attempts (retried after 2**attempt s on a timeout, a connection error or a 429; any other
   non-200 is final: "Module did not respond").

What reaches chat (`chat`): a receiver posts the router's error when the router's result fails, else
the module's `ExecuteResponse`: its `message` when `success` is true and the message is not empty,
its `error` when `success` is false. (The published receivers read an `action.content` that the
router never sets; what is modelled is the module's response being posted, as docs/waddlebot.md says.)

Deviation, named: the published `process_event` reads the channel from `entity_id`, a field its own
`RouterEventRequest` forbids, so an event posted to its `/events` never finds its community; its
Redis-stream path passes the receiver's raw event, `entity_id` included. `process_event` here takes
that raw event.
"""

from __future__ import annotations

import asyncio
import datetime
import threading
import uuid
from typing import Any, Optional

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from quart import Quart, request

from tests.server_thread import ServerThread

ROUTER_REQUEST_TIMEOUT = 30  # processing/router_module/config.py default


class RouterResponseRequest(BaseModel):
    """validation_models.RouterResponseRequest, as published."""

    event_id: str = Field(..., min_length=1, max_length=255)
    response: str = Field(..., min_length=1, max_length=5000)
    platform: str = Field(..., pattern=r"^(twitch|discord|slack|kick)$")
    channel_id: str = Field(..., min_length=1, max_length=255)

    @field_validator("event_id", "channel_id")
    @classmethod
    def validate_not_empty(cls, v: str, info: Any) -> str:
        if not v or not v.strip():
            raise ValueError(f"{info.field_name} cannot be empty or whitespace only")
        return v.strip()

    @field_validator("response")
    @classmethod
    def validate_response(cls, v: str) -> str:
        if not v or not v.strip():
            raise ValueError("response cannot be empty or whitespace only")
        return v

    model_config = ConfigDict(extra="forbid")


def _success(data: Any) -> tuple[dict[str, Any], int]:
    """flask_core.api_utils.success_response."""
    return {"success": True, "data": data, "timestamp": datetime.datetime.now(datetime.UTC).isoformat()}, 200


def _validation_failed(exc: ValidationError) -> tuple[dict[str, Any], int]:
    """flask_core.validation.validate_json, strict."""
    errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
              for e in exc.errors()]
    return {"status": "error", "message": "Validation failed", "errors": errors}, 400


class WaddleBotRouter:
    PREFIX = "/api/v1/router"

    def __init__(self, service_key: str | None = None, request_timeout: float = ROUTER_REQUEST_TIMEOUT) -> None:
        self.service_key = service_key  # the router's SERVICE_API_KEY
        self.request_timeout = request_timeout
        self.commands: dict[str, dict[str, str]] = {}  # the `commands` table: "!ai" → module
        self.communities: dict[str, int] = {}  # community_servers: entity → community id
        self.responses: list[dict[str, Any]] = []  # /responses bodies accepted (as validated)
        self.rejected: list[dict[str, Any]] = []  # /responses refused: {"body", "errors"}
        self.module_calls: list[dict[str, Any]] = []  # every attempt at a module's /api/v1/execute
        self.chat: list[str] = []  # what the receiver would post
        self._lock = threading.Lock()
        self._server: ServerThread | None = None
        self.app = self._build_app()

    # --- lifecycle -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    @property
    def base_url(self) -> str:
        """What ROUTER_API_URL should be set to (the router's blueprint prefix)."""
        return self.url + self.PREFIX

    def start(self) -> "WaddleBotRouter":
        self._server = ServerThread(self.app, graceful_timeout=0.5).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server:
            server.stop()

    # --- the registry (the `commands` and `community_servers` tables) ---------------------------
    def register_command(self, command: str, module_url: str, module_name: str = "ai_interaction") -> None:
        self.commands[command] = {"module_name": module_name, "module_url": module_url.rstrip("/")}

    def link(self, entity_id: str, community_id: int) -> None:
        self.communities[entity_id] = community_id

    # --- POST /api/v1/router/responses --------------------------------------------------------
    def _build_app(self) -> Quart:
        app = Quart(__name__)

        @app.post(self.PREFIX + "/responses")
        async def submit_response() -> tuple[dict[str, Any], int]:
            data = await request.get_json(silent=True)
            if data is None:
                return {"status": "error", "message": "Request body must be valid JSON", "errors": []}, 400
            try:
                validated = RouterResponseRequest.model_validate(data)
            except ValidationError as exc:
                answer = _validation_failed(exc)
                with self._lock:
                    self.rejected.append({"body": data, "errors": answer[0]["errors"]})
                return answer
            with self._lock:
                self.responses.append(validated.model_dump())
            return _success({"message": "Response received"})

        return app

    # --- the command processor ------------------------------------------------------------------
    def say(self, message: str, *, user_id: str = "user-42", entity_id: str = "twitch:channel:789",
            platform: str = "twitch", username: str = "viewer42") -> dict[str, Any]:
        """A chat message from a viewer, through the command processor (run on a loop of its own)."""
        event = {"entity_id": entity_id, "user_id": user_id, "username": username, "message": message,
                 "message_type": "chatMessage", "platform": platform, "metadata": {}}
        return asyncio.run(self.process_event(event))

    async def process_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """CommandProcessor.process_event for a chat message; the result is what the receiver gets."""
        entity_id, user_id = event.get("entity_id"), event.get("user_id")
        message = event.get("message", "")
        session_id = f"sess_{uuid.uuid4().hex}"  # SessionManager.create_session
        if not (message.startswith("!") or message.startswith("#")):
            return {"success": True, "session_id": session_id, "processed": False}
        command = message.split()[0] if message else ""
        result = await self.execute_command(command, entity_id, user_id, message, session_id)
        self._post_to_chat(result)
        return result

    async def execute_command(self, command: str, entity_id: Optional[str], user_id: Optional[str],
                              message: str, session_id: str) -> dict[str, Any]:
        community_id = self.communities.get(entity_id or "")
        if not community_id:
            return {"success": False, "error": "Community not found for this channel", "session_id": session_id}
        cmd_info = self.commands.get(command)
        if not cmd_info:
            return {"success": False, "error": f"Unknown command: {command}", "session_id": session_id,
                    "help_url": "/commands"}
        parts = message.split(maxsplit=1)
        args = parts[1] if len(parts) > 1 else ""
        payload = {"command": command, "args": args, "user_id": user_id, "entity_id": entity_id,
                   "community_id": community_id, "session_id": session_id, "message": message}
        module_response = await self._call_module_with_retry(cmd_info["module_url"], payload, max_retries=3)
        if module_response:
            return {"success": True, "session_id": session_id, "command": command,
                    "module": cmd_info["module_name"], "response": module_response}
        return {"success": False, "error": "Module did not respond", "session_id": session_id}

    async def _call_module_with_retry(self, module_url: str, payload: dict[str, Any],
                                      max_retries: int = 3) -> Optional[dict[str, Any]]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            for attempt in range(max_retries):
                # The published router sleeps 2**attempt s before a retry; the fake records that wait
                # (`backoff_s` of the call retried) and retries at once: tests wait for calls, not clocks.
                call: dict[str, Any] = {"url": f"{module_url}/api/v1/execute", "payload": payload,
                                        "status": None, "body": None, "error": None, "backoff_s": None}
                with self._lock:
                    self.module_calls.append(call)
                try:
                    timeout = aiohttp.ClientTimeout(total=self.request_timeout)
                    headers = {}
                    if self.service_key:
                        headers["X-Service-Key"] = self.service_key
                    async with session.post(call["url"], json=payload, headers=headers, timeout=timeout) as response:
                        call["status"] = response.status
                        if response.status == 200:
                            call["body"] = await response.json()
                            return call["body"]
                        if response.status == 429:
                            call["backoff_s"] = 2 ** attempt
                            continue
                        return None
                except asyncio.TimeoutError:
                    call["error"] = "timeout"
                    if attempt < max_retries - 1:
                        call["backoff_s"] = 2 ** attempt
                        continue
                    return None
                except Exception as exc:  # noqa: BLE001 - as published
                    call["error"] = repr(exc)
                    if attempt < max_retries - 1:
                        call["backoff_s"] = 2 ** attempt
                        continue
                    return None
        return None

    def _post_to_chat(self, result: dict[str, Any]) -> None:
        if not result.get("success"):
            line = f"Error: {result.get('error', 'Command failed')}"
        else:
            response = result.get("response") or {}
            line = response.get("message") if response.get("success") else f"Error: {response.get('error')}"
        if line:
            with self._lock:
                self.chat.append(line)
