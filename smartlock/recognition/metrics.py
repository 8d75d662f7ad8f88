"""Prometheus metrics of the recognition API in a per-app registry, and the ASGI middleware feeding them."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "smartlock_recognition"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FACE_BUCKETS = (0, 1, 2, 3, 4, 5, 10, 20, 50)


class ApiMetrics:
    """Counters and histograms of one app. A registry of its own, so two apps in one process (tests,
    `smartlock up`) never share or collide on metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            f"{PREFIX}_requests",
            "HTTP requests answered, by method, endpoint (route template) and status code.",
            ["method", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time from receiving a request to the end of its response, by method and endpoint.",
            ["method", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.faces = Histogram(
            f"{PREFIX}_faces_per_image",
            "Faces found per image posted to /face-recognition.",
            buckets=FACE_BUCKETS,
            registry=self.registry,
        )
        self.inference = Histogram(
            f"{PREFIX}_inference_seconds",
            "Time spent decoding and recognising one image (excludes upload and queueing).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.people = Gauge(f"{PREFIX}_people", "People enrolled in the gallery.", registry=self.registry)

    def watch_people(self, count: Callable[[], int]) -> None:
        """Read the enrolled-people gauge from ``count`` at every scrape."""
        self.people.set_function(lambda: float(count()))

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of every metric, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP response by route template and status, and times it.

    Pure ASGI rather than BaseHTTPMiddleware so streaming uploads are not buffered and errors raised
    inside the app are still counted (as 500) before they propagate to the outer error handler.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            # The router stores the matched route in the (shared) scope; unmatched paths are lumped
            # together so random URLs cannot blow up the number of label values.
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, endpoint, str(status)).inc()
            self.metrics.latency.labels(method, endpoint).observe(time.perf_counter() - started)
