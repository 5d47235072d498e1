"""An accepted interaction as it travels from the ACK to its outcome."""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field

from api.models import InteractionRequest


@dataclass(slots=True)
class Interaction:
    request: InteractionRequest
    request_id: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    accepted_at: float = field(default_factory=time.time)  # wall clock: survives a process (PG mode)

    @property
    def age_s(self) -> float:
        return time.time() - self.accepted_at


def dedupe_key(req: InteractionRequest) -> str:
    """The router's message id when given; else session + type + content (contract §2)."""
    if req.message_id:
        return "m:" + req.message_id
    digest = hashlib.blake2b(
        "\x1f".join((req.session_id, req.message_type, req.message_content)).encode(), digest_size=16
    ).hexdigest()
    return "c:" + digest
