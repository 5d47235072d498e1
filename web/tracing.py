"""The HTTP server span of the traced endpoints: an ASGI middleware around the Quart app.

Installed only when tracing is on (web/app.py: `app.asgi_app = TracedRequests(app.asgi_app)`, the
way Quart documents for ASGI middleware); with tracing off the app is not wrapped at all.

The span of a request continues the caller's W3C `traceparent`/`tracestate` and is the current
span while the app handles it, so what the request starts nests under it: the LLM call of a
completion or a command, and the queued interaction (its context travels with it, web/interaction.py).
It covers the whole exchange, error mapping and a streamed body included, and ends with the status.
Traced: the interaction ACK, the module SDK's execute, the OpenAI-compatible API. Not traced:
probes, scrapes and admin calls.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from observability import tracing

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# path → route (the span's name and http.route)
TRACED_ROUTES = {
    "/api/v1/ai/interaction": "/api/v1/ai/interaction",
    "/api/v1/execute": "/api/v1/execute",
    "/api/v1/ai/chat/completions": "/api/v1/ai/chat/completions",
    "/v1/chat/completions": "/v1/chat/completions",
    "/api/v1/ai/models": "/api/v1/ai/models",
    "/v1/models": "/v1/models",
}
MODEL_ROUTES = ("/api/v1/ai/models/", "/v1/models/")  # + a model id: route …/models/{model}
PROPAGATION_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})


def route_of(path: str) -> str | None:
    route = TRACED_ROUTES.get(path)
    if route is None:
        for prefix in MODEL_ROUTES:
            if path.startswith(prefix) and len(path) > len(prefix):
                return prefix + "{model}"
    return route


class TracedRequests:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = route_of(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        given = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
                 if name.decode("latin-1") in PROPAGATION_HEADERS}
        attributes = {"http.request.method": method, "http.route": route, "url.path": scope["path"],
                      "url.scheme": scope.get("scheme", "http")}
        with tracing.span(f"{method} {route}", tracing.SpanKind.SERVER, attributes,
                          context=tracing.extract(given)) as span:

            async def send_traced(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:  # a server span fails on 5xx only (the caller's 4xx is not ours)
                        tracing.error(span, str(status))
                await send(message)

            await self.app(scope, receive, send_traced)
