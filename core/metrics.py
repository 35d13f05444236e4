"""Prometheus metrics, one registry per relay (prometheus_client renders the text format)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.pushes = Counter("relay_pushes", "WeChat pushes by result", ["result"], registry=r)
        self.refused = Counter("relay_requests_refused", "Refused inbound requests", ["route", "status"], registry=r)
        self.callbacks = Counter("relay_desk_callbacks", "Desk callbacks by result", ["desk", "result"], registry=r)
        self.deliveries = Counter("relay_deliveries", "Outbox job attempts by kind and result", ["kind", "result"],
                                  registry=r)
        self.wechat_errors = Counter("relay_wechat_errors", "WeChat API errcodes other than 0", ["errcode"],
                                     registry=r)
        self.outbox = Gauge("relay_outbox_jobs", "Outbox jobs by status", ["status"], registry=r)

    def render(self, depth: dict[str, int]) -> bytes:
        for status, count in depth.items():
            self.outbox.labels(status).set(count)
        return generate_latest(self.registry)
