"""Prometheus metrics of a process: RPC latency, events, outbox and dead letters."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RPC_LATENCY = Histogram("siyu_rpc_seconds", "gRPC handling time", ["service", "method", "code"])
EVENTS_PUBLISHED = Counter("siyu_events_published_total", "events relayed from the outbox", ["service"])
OUTBOX_BACKLOG = Gauge("siyu_outbox_backlog", "documents with unsent events at the last relay pass", ["service"])
EVENTS_HANDLED = Counter("siyu_events_handled_total", "events consumed", ["service", "consumer", "outcome"])
EVENT_LAG = Histogram("siyu_event_lag_seconds", "time from event to its handling", ["service", "consumer"])
DEAD_LETTERS = Counter("siyu_dead_letters_total", "events sent to the dead-letter stream", ["service", "consumer"])


def serve(port: int) -> None:
    if port:
        start_http_server(port, addr="127.0.0.1")
