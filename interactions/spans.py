"""The spans of one queued interaction, under the ACK's server span (docs/design.md "Tracing"):

    interaction.queue_wait   from the ACK to the worker's pick-up (recorded at pick-up)
    interaction.process      the worker's processing; its outcome and trigger as attributes
      interaction.decide     expiry, trigger, rate limit (interactions/reply.py)
      chat {model}           each provider call (llm/spans.py)
      router.post_reply      the delivery (router/client.py)

The ACK's context travels with the interaction (`Interaction.trace_context`, through the memory
queue as it is, through PostgreSQL inside the stored row), so the trace continues on whichever
instance processes it. With tracing off, nothing here runs.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from typing import Iterator

from interactions.model import Interaction
from observability import tracing


def processing(interaction: Interaction) -> AbstractContextManager[tracing.Span]:
    """Record the queue wait, then run the block as `interaction.process` (the current span)."""
    return _processing(interaction) if tracing.enabled() else tracing.NO_SPAN


@contextmanager
def _processing(interaction: Interaction) -> Iterator[tracing.Span]:
    parent = tracing.extract(interaction.trace_context)
    req = interaction.request
    attributes: dict[str, str | int] = {"interaction.id": interaction.id, "interaction.platform": req.platform}
    if req.community_id is not None:
        attributes["interaction.community_id"] = req.community_id
    tracing.start_span("interaction.queue_wait", attributes=attributes, context=parent,
                       start_time=int(interaction.accepted_at * 1e9)).end()
    with tracing.span("interaction.process", attributes=attributes, context=parent) as span:
        yield span
