"""Distributed tracing with OpenTelemetry (docs/design.md "Tracing"): the service's tracer, W3C
context propagation, and the OTLP exporter built from the standard OTEL_* variables.

Off by default. `build_provider(settings)` returns None unless OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (and OTEL_SDK_DISABLED is not true); the SDK is imported
only then. While no provider is installed, the tracer is the API's no-op tracer and every helper
here returns at once: nothing is extracted from requests, nothing is injected into upstream calls,
no span object is made.

`Tracing` is the runtime's part: it builds (or is handed) the provider, installs it at start-up and
at shutdown uninstalls it, flushes what is pending and shuts down a provider it built (one handed
in, as tests do with the SDK's in-memory exporter, is flushed only: its owner shuts it down). The
provider is this module's, never the API's global one: the global can be set once per process, and
tests run several apps, each with its own exporter.

Propagation uses the API's configured propagators (`opentelemetry.propagate`, OTEL_PROPAGATORS;
default W3C `traceparent`/`tracestate` and `baggage`).
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Iterator, Mapping

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode

from config.settings import MODULE_NAME, VERSION, Settings

TRACER_NAME = MODULE_NAME
TRACES_PATH = "/v1/traces"  # appended to OTEL_EXPORTER_OTLP_ENDPOINT, as the specification says

_tracer: trace.Tracer = trace.NoOpTracer()
_enabled = False
NO_SPAN: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)  # the block of a span when off


def traces_endpoint(settings: Settings) -> str | None:
    """Where spans go: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given, else OTEL_EXPORTER_OTLP_ENDPOINT
    with /v1/traces appended; None when tracing is off."""
    if settings.otel_sdk_disabled:
        return None
    if settings.otel_exporter_otlp_traces_endpoint:
        return settings.otel_exporter_otlp_traces_endpoint
    if settings.otel_exporter_otlp_endpoint:
        return settings.otel_exporter_otlp_endpoint.rstrip("/") + TRACES_PATH
    return None


def build_provider(settings: Settings, instance_id: str | None = None) -> Any:
    """A TracerProvider exporting over OTLP/HTTP in batches, or None when tracing is off.

    The batch processor starts its export thread here (exports never run on the event loop). The
    SDK reads the other standard variables itself from the process environment: the sampler
    (OTEL_TRACES_SAMPLER), the batch sizes (OTEL_BSP_*), the exporter's timeout, compression and
    certificates, OTEL_RESOURCE_ATTRIBUTES."""
    endpoint = traces_endpoint(settings)
    if endpoint is None:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.util.re import parse_env_headers

    headers: dict[str, str] = {}
    for secret in (settings.otel_exporter_otlp_headers, settings.otel_exporter_otlp_traces_headers):
        if secret is not None:  # the traces-only headers win over the general ones
            headers.update(parse_env_headers(secret.get_secret_value(), liberal=True))
    attributes = {"service.name": settings.otel_service_name, "service.version": VERSION}
    if instance_id:
        attributes["service.instance.id"] = instance_id
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, headers=headers or None)))
    return provider


class Tracing:
    """The runtime's tracing: off, or a provider (`provider`, else built from the settings)."""

    def __init__(self, settings: Settings, provider: Any = None, instance_id: str | None = None) -> None:
        self.settings, self.instance_id = settings, instance_id
        self.provider = provider
        self.owned = False  # True: built here, so shut down here
        self.on = provider is not None or traces_endpoint(settings) is not None

    def start(self) -> None:
        if not self.on:
            return
        if self.provider is None:
            self.provider, self.owned = build_provider(self.settings, self.instance_id), True
        install(self.provider)

    async def stop(self) -> None:
        """After the last span of this runtime: flush (a thread: the export is blocking I/O)."""
        if not self.on or self.provider is None:
            return
        uninstall()
        await asyncio.to_thread(self.provider.force_flush)
        if self.owned:
            await asyncio.to_thread(self.provider.shutdown)


def install(provider: Any) -> None:
    """Trace with `provider` (an SDK TracerProvider) from now on; None leaves tracing off."""
    global _tracer, _enabled
    if provider is None:
        uninstall()
        return
    _tracer = provider.get_tracer(TRACER_NAME, VERSION)
    _enabled = True


def uninstall() -> None:
    """Back to the API's no-op tracer (at shutdown, after the last span ended)."""
    global _tracer, _enabled
    _tracer, _enabled = trace.NoOpTracer(), False


def enabled() -> bool:
    return _enabled


# --- propagation ---------------------------------------------------------------------------------
def extract(headers: Mapping[str, str] | None) -> Context | None:
    """The caller's context from W3C headers (`traceparent`, `tracestate`, `baggage`); None when
    tracing is off. Without (valid) headers, an empty context: a span started in it is a new root."""
    if not _enabled:
        return None
    return propagate.extract(headers) if headers else Context()


def carrier() -> dict[str, str] | None:
    """The current context as W3C headers, to travel with a queued interaction; None when off."""
    if not _enabled:
        return None
    found: dict[str, str] = {}
    propagate.inject(found)
    return found or None


def headers_for(span: Span) -> dict[str, str]:
    """W3C headers naming `span` as the parent of the upstream call (empty when off). A span the
    sampler dropped still passes its context on, marked not sampled, so the trace stays one."""
    if not _enabled:
        return {}
    found: dict[str, str] = {}
    propagate.inject(found, context=trace.set_span_in_context(span))
    return found


@contextmanager
def continued(carried: Mapping[str, str] | None) -> Iterator[None]:
    """Run the block in the context carried from elsewhere (a queued interaction, an outbox row):
    spans started in it join that trace."""
    if not _enabled or not carried:
        yield
        return
    token = otel_context.attach(propagate.extract(carried))
    try:
        yield
    finally:
        otel_context.detach(token)


# --- spans -----------------------------------------------------------------------------------------
def span(name: str, kind: SpanKind = SpanKind.INTERNAL, attributes: Mapping[str, Any] | None = None,
         context: Context | None = None, start_time: int | None = None) -> AbstractContextManager[Span]:
    """A span that is the current one inside the block (its children nest under it); ended on exit.
    An exception escaping the block marks it ERROR with the exception's type only (exception
    messages may quote upstream answers; nothing of the chat goes into spans). Off: a shared
    do-nothing block yielding a non-recording span."""
    if not _enabled:
        return NO_SPAN
    return _current_span(name, kind, attributes, context, start_time)


@contextmanager
def _current_span(name: str, kind: SpanKind, attributes: Mapping[str, Any] | None, context: Context | None,
                  start_time: int | None) -> Iterator[Span]:
    with _tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes,
                                       start_time=start_time, record_exception=False,
                                       set_status_on_exception=False) as current:
        try:
            yield current
        except BaseException as exc:
            error(current, type(exc).__name__)
            raise


def start_span(name: str, kind: SpanKind = SpanKind.INTERNAL, attributes: Mapping[str, Any] | None = None,
               context: Context | None = None, start_time: int | None = None) -> Span:
    """A span that is NOT made current (streams, spans ended elsewhere): end it with `.end()`."""
    if not _enabled:
        return INVALID_SPAN
    return _tracer.start_span(name, context=context, kind=kind, attributes=attributes, start_time=start_time,
                              record_exception=False, set_status_on_exception=False)


def set_attributes(attributes: Mapping[str, Any], target: Span | None = None) -> None:
    """Add attributes to `target`, else to the current span (nothing when off)."""
    if _enabled:
        (target or trace.get_current_span()).set_attributes(attributes)


def error(target: Span, error_type: str) -> None:
    """Mark a span failed: status ERROR and `error.type` (a short kind, never a message)."""
    if target.is_recording():
        target.set_attribute("error.type", error_type)
        target.set_status(Status(StatusCode.ERROR, error_type))
