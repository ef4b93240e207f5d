"""Prometheus metrics, held on one registry per app so tests and nodes never share state."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every metric the gateway exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.engine_batch_size = Histogram(
            "croupier_engine_batch_operations",
            "Operations applied per ledger engine transaction.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.engine_batch_seconds = Histogram(
            "croupier_engine_batch_seconds",
            "Time from a ledger engine batch's start to its commit.",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.requests = Counter(
            "croupier_provider_requests",
            "Provider callbacks by outcome.",
            ["provider", "operation", "outcome"],
            registry=r,
        )
        self.request_latency = Histogram(
            "croupier_provider_request_seconds",
            "Provider callback latency by outcome.",
            ["provider", "operation", "outcome"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.operator_calls = Histogram(
            "croupier_operator_call_seconds",
            "Calls to operator wallets by outcome.",
            ["operator", "call", "outcome"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.unknown_outcomes = Counter(
            "croupier_operator_unknown_outcomes",
            "Operator calls that ended with no definite answer.",
            ["operator", "call"],
            registry=r,
        )
        self.reconciliation_differences = Counter(
            "croupier_reconciliation_differences_total",
            "Differences reconciliation found, by operator, class and what became of them",
            ["operator", "kind", "outcome"],
            registry=r,
        )
        self.operator_retries = Counter(
            "croupier_operator_retries",
            "Repeated calls to operator wallets.",
            ["operator", "call"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "croupier_outbox_depth",
            "Operator calls waiting in the outbox.",
            registry=r,
        )
        self.outbox_oldest_age = Gauge(
            "croupier_outbox_oldest_age_seconds",
            "Age of the oldest call waiting in the outbox.",
            registry=r,
        )
        self.outbox_dead = Gauge(
            "croupier_outbox_dead",
            "Outbox calls the operator refused for good: owed money a person must reconcile.",
            registry=r,
        )
        self.outbox_delivered = Counter(
            "croupier_outbox_delivered",
            "Outbox calls delivered, by action and outcome.",
            ["operator", "action", "outcome"],
            registry=r,
        )
