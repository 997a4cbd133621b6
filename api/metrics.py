"""Prometheus metrics for one app instance (its own registry: two apps in one process, as in tests, never share
counters). Scraped at ``GET /metrics``."""

from __future__ import annotations

import time

import torch
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256)


class ServiceMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "detector_requests_total",
            "HTTP requests answered, by route and status",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "detector_request_latency_seconds",
            "time to answer a request, by route",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "detector_queue_depth", "images waiting for a model's inference worker", ["model"], registry=r
        )
        self.batch_size = Histogram(
            "detector_batch_size", "images per inference call", ["model"], buckets=_BATCH_BUCKETS, registry=r
        )
        self.inference = Histogram(
            "detector_inference_seconds",
            "model time per inference call (one batch)",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.gpu_memory = Gauge(
            "detector_gpu_memory_allocated_bytes", "CUDA memory allocated by the process", ["device"], registry=r
        )
        self.gpu_memory_peak = Gauge(
            "detector_gpu_memory_peak_bytes", "peak CUDA memory allocated by the process", ["device"], registry=r
        )

    def render(self) -> bytes:
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                self.gpu_memory.labels(f"cuda:{i}").set(torch.cuda.memory_allocated(i))
                self.gpu_memory_peak.labels(f"cuda:{i}").set(torch.cuda.max_memory_allocated(i))
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every request by its route template (``/detect``, not the raw URL, so the label set stays small)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(endpoint, scope["method"], str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
