"""Prometheus metrics of a process: RPC latency, events, consumer lag and redeliveries,
outbox, dead letters and database round trips."""
from __future__ import annotations

import os
import urllib.request

from prometheus_client import Counter, Gauge, Histogram, start_http_server
from prometheus_client.parser import text_string_to_metric_families

RPC_LATENCY = Histogram("siyu_rpc_seconds", "gRPC handling time", ["service", "method", "code"])
EVENTS_PUBLISHED = Counter("siyu_events_published_total", "events relayed from the outbox", ["service"])
OUTBOX_BACKLOG = Gauge("siyu_outbox_backlog", "documents with unsent events at the last relay pass", ["service"])
EVENTS_HANDLED = Counter("siyu_events_handled_total", "events consumed", ["service", "consumer", "outcome"])
EVENT_LAG = Histogram("siyu_event_lag_seconds", "time from event to its handling", ["service", "consumer"])
REDELIVERIES = Counter("siyu_event_redeliveries_total", "deliveries of an event after its first",
                       ["service", "consumer"])
CONSUMER_PENDING = Gauge("siyu_consumer_pending", "messages on the stream not yet delivered to the consumer (lag)",
                         ["service", "consumer"])
CONSUMER_UP = Gauge("siyu_consumer_up", "1 while the consumer is subscribed, 0 while it is down",
                    ["service", "consumer"])
DEAD_LETTERS = Counter("siyu_dead_letters_total", "events sent to the dead-letter stream", ["service", "consumer"])
# Database round trips: `rpc` is the RPC a command ran for, or "background" (relay,
# consumers, jobs). The budget test and `make bench` read it to count trips per use case.
DB_COMMANDS = Counter("siyu_db_commands_total", "MongoDB commands sent", ["service", "rpc"])
# Finished runs of a periodic job, by outcome: a stalled job shows as a flat counter, and a
# test waits for it to advance instead of sleeping for some runs.
JOB_RUNS = Counter("siyu_job_runs_total", "finished runs of a periodic job", ["service", "job", "outcome"])
# Leases (siyu_kit/lease.py): 1 while this replica holds the lease of the job (or of the
# relay's sweep); summed over replicas, at most 1 per job.
LEASES_HELD = Gauge("siyu_leases_held", "leases this process holds, by job", ["service", "job"])
# Publishes JetStream dropped as duplicates of an earlier one (Nats-Msg-Id): two relays overlapped.
EVENTS_DUPLICATE = Counter("siyu_events_duplicate_total", "relayed events JetStream already had", ["service"])
# Relayed events by subject family (a live room's subject without its session id).
EVENTS_PUBLISHED_BY_SUBJECT = Counter("siyu_events_published_by_subject_total", "events relayed from the outbox",
                                      ["service", "subject"])


def serve(port: int) -> None:
    # Loopback unless SIYU_METRICS_HOST says otherwise (0.0.0.0 in a pod, for the scraper).
    if port:
        start_http_server(port, addr=os.environ.get("SIYU_METRICS_HOST", "127.0.0.1"))


def db_commands(metrics_url: str) -> dict[str, float]:
    """A running service's database round trips so far, by RPC (read from its endpoint)."""
    with urllib.request.urlopen(metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    return {sample.labels["rpc"]: sample.value
            for family in text_string_to_metric_families(text) if family.name == "siyu_db_commands"
            for sample in family.samples if sample.name == "siyu_db_commands_total"}


def consumer_lag(metrics_url: str) -> float:
    """A running service's events not yet delivered to its consumers, all durables together
    (each consumer reads its lag every few seconds)."""
    with urllib.request.urlopen(metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text) if family.name == "siyu_consumer_pending"
               for sample in family.samples)


def job_runs(metrics_url: str, job: str) -> float:
    """A running service's finished runs of `job` so far, whatever their outcome."""
    with urllib.request.urlopen(metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text) if family.name == "siyu_job_runs"
               for sample in family.samples
               if sample.name == "siyu_job_runs_total" and sample.labels["job"] == job)
