"""Tracing in tests: an SDK TracerProvider with the SDK's in-memory exporter, handed to the app
(`running_app(settings, tracer_provider=...)`), and helpers to read the finished spans."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.waiting import wait_until

# The caller's context, as a router or an OpenAI client with its own tracing would send it.
CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"
TRACESTATE = "router=7f3a,vendor=b"
CALLER = {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}


class Traced:
    """The provider to hand to the app and what it exported (synchronously, as each span ends)."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def trace(self, trace_id: str | int) -> list[ReadableSpan]:
        wanted = int(trace_id, 16) if isinstance(trace_id, str) else trace_id
        return [s for s in self.spans() if s.context.trace_id == wanted]

    def named(self, name: str, **attributes: Any) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name == name
                and all(s.attributes.get(k) == v for k, v in attributes.items())]

    def wait_for(self, name: str, timeout: float = 10.0, **attributes: Any) -> ReadableSpan:
        """The first finished span of that name (and attributes), waiting for it with a deadline."""
        found = wait_until(lambda: self.named(name, **attributes), timeout=timeout, message=f"span {name}")
        return found[0]


@pytest.fixture
def traced() -> Iterator[Traced]:
    handle = Traced()
    try:
        yield handle
    finally:
        handle.provider.shutdown()


def hex_trace(span: ReadableSpan) -> str:
    return f"{span.context.trace_id:032x}"


def hex_span(span: ReadableSpan) -> str:
    return f"{span.context.span_id:016x}"


def traceparent_of(span: ReadableSpan) -> str:
    """The traceparent that names `span` as the parent of a call (sampled)."""
    return f"00-{hex_trace(span)}-{hex_span(span)}-01"


def parent_id(span: ReadableSpan) -> str | None:
    return None if span.parent is None else f"{span.parent.span_id:016x}"


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def attribute_text(spans: list[ReadableSpan]) -> str:
    """Every attribute value of these spans as one text (to look for what must never be there)."""
    return "\n".join(str(value) for s in spans for value in (s.attributes or {}).values())
