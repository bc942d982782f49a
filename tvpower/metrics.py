"""Prometheus metrics of the publisher, in a registry of its own.

A registry per publisher keeps tests and several publishers in one process
apart; ``python -m tvpower.publish --metrics-port`` serves it over HTTP.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server

__all__ = ["Metrics"]

# Publish latency: a PUBACK on loopback takes about a millisecond; one from
# a busy broker over a WAN can take seconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class Metrics:
    """The publisher's counters and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.publishes = Counter(
            "tvpower_publishes",
            "Publish attempts by outcome (acknowledged, failed, dry_run)",
            ["outcome"],
            registry=r,
        )
        self.transitions = Counter(
            "tvpower_transitions",
            "Intents of a new meaning acknowledged, by desired state",
            ["desired_state"],
            registry=r,
        )
        self.skipped_expired = Counter(
            "tvpower_skipped_expired_intents",
            "Intents not published because they had expired before sending",
            registry=r,
        )
        self.publish_latency = Histogram(
            "tvpower_publish_latency_seconds",
            "Time from sending a PUBLISH to its PUBACK",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.clients_known = Gauge(
            "tvpower_clients_known",
            "Clients the publisher keeps an intent for",
            registry=r,
        )
        self.retained_age = Gauge(
            "tvpower_retained_payload_age_seconds",
            "Age of the oldest intent payload the broker acknowledged and retains",
            registry=r,
        )
        self.schedule_loads = Counter(
            "tvpower_schedule_loads",
            "Schedule (re)loads by outcome (accepted, rejected)",
            ["outcome"],
            registry=r,
        )
        self.connected = Gauge(
            "tvpower_broker_connected",
            "1 while connected to the broker, else 0",
            registry=r,
        )

    def watch_retained_age(self, age: Callable[[], float]) -> None:
        """Compute the retained payload age when scraped, not when published."""
        self.retained_age.set_function(age)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` over HTTP on ``host:port`` from a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)
