"""Every interaction's one outcome, counted in the metrics and logged (§3): the queued ones by the
workers (interactions/workers.py), the commands answered inline by interactions/commands.py."""

from __future__ import annotations

import logging
import time
from typing import Any

from interactions.model import Interaction
from observability import metrics
from observability.logs import get_logger, hash_user

log = get_logger(__name__)

_outcome_children: dict[tuple[str, str], tuple[Any, Any]] = {}


def _children(outcome: str, trigger: str) -> tuple[Any, Any]:
    """The two metric series of one (outcome, trigger), looked up once (labels() is a dict build)."""
    children = _outcome_children.get((outcome, trigger))
    if children is None:
        children = (metrics.interactions_total.labels(outcome=outcome, trigger=trigger),
                    metrics.interaction_duration.labels(outcome=outcome))
        _outcome_children[(outcome, trigger)] = children
    return children


def record_outcome(interaction: Interaction, outcome: str, trigger: str, started: float | None = None,
                   action: str = "process_interaction") -> None:
    req = interaction.request
    counter, duration = _children(outcome, trigger)
    counter.inc()
    duration.observe(max(0.0, interaction.age_s))
    # Most chat is ignored: those lines go to debug (the metrics count them), the rest to info.
    # The line's fields (a user hash among them) are computed only when it is written.
    if outcome == "ignored" and not log.is_enabled_for(logging.DEBUG):
        return
    (log.debug if outcome == "ignored" else log.info)(
        "interaction finished", action=action, result=outcome, trigger=trigger,
        interaction_id=interaction.id, request_id=interaction.request_id, platform=req.platform,
        community=req.community_id, user=hash_user(req.user_id),
        execution_time_ms=None if started is None else round((time.perf_counter() - started) * 1000, 1),
    )
