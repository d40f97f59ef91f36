"""JetStream streams: one per service, one for live rooms, and the dead-letter stream.

Every process brings the streams to its settings at start (`ensure_streams`): a missing
stream is created, an existing one whose replicas, subjects, limits or duplicate window
differ is updated. On a cluster (`SIYU_STREAM_REPLICAS=3`) a stream survives the loss of
one node: its leader moves to another replica and publishes and fetches resume."""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from siyu_kit import config, logging as slog
from siyu_kit.config import SERVICE_NAMES

log = slog.get("siyu.streams")

DLQ_STREAM = "SIYU_DLQ"
DLQ_PREFIX = "siyu.dlq"
DUPLICATE_WINDOW_S = 120.0
# Live-room events (`siyu.live.room.<live_session_id>`): many, small, and worth replaying
# only to a viewer who reconnects during or shortly after the session.
LIVE_STREAM_TOPIC = "live"
LIVE_MAX_AGE_S = 24 * 3600.0

# What a running stream may change to follow the settings. Storage and retention are
# fixed at creation: a difference there is reported, never forced.
TUNABLE = ("subjects", "num_replicas", "max_age", "duplicate_window", "max_msgs", "max_bytes",
           "max_msg_size", "discard")
FIXED = ("storage", "retention")

CREATED, UPDATED, UNCHANGED, REFUSED = "created", "updated", "unchanged", "refused"
# JetStream's "insufficient resources": fewer nodes known than replicas wanted, as while a
# cluster is still forming; worth waiting for.
INSUFFICIENT_RESOURCES = 10023


def stream_name(service: str) -> str:
    return f"SIYU_{service.upper()}"


def subject_of(service: str, entity: str, verb: str) -> str:
    return f"siyu.{service}.{entity}.{verb}"


def stream_replicas() -> int:
    """SIYU_STREAM_REPLICAS: copies of each stream and durable consumer (1 on one NATS
    server; 3 on a 3-node cluster, so one node may go)."""
    replicas = config.env_count("STREAM_REPLICAS", 1)
    if not 1 <= replicas <= 5:
        raise ValueError(f"SIYU_STREAM_REPLICAS must be between 1 and 5, got {replicas}")
    return replicas


def stream_configs(replicas: int | None = None) -> list[StreamConfig]:
    """The streams the suite needs, as this process's settings want them."""
    replicas = stream_replicas() if replicas is None else replicas
    configs = [
        StreamConfig(name=stream_name(s), subjects=[f"siyu.{s}.>"], storage=StorageType.FILE,
                     retention=RetentionPolicy.LIMITS, duplicate_window=DUPLICATE_WINDOW_S,
                     max_age=7 * 24 * 3600.0, num_replicas=replicas)
        for s in SERVICE_NAMES
    ]
    configs.append(StreamConfig(name=stream_name(LIVE_STREAM_TOPIC), subjects=[f"siyu.{LIVE_STREAM_TOPIC}.>"],
                                storage=StorageType.FILE, retention=RetentionPolicy.LIMITS,
                                duplicate_window=DUPLICATE_WINDOW_S, max_age=LIVE_MAX_AGE_S,
                                num_replicas=replicas))
    configs.append(StreamConfig(name=DLQ_STREAM, subjects=[f"{DLQ_PREFIX}.>"], storage=StorageType.FILE,
                                retention=RetentionPolicy.LIMITS, duplicate_window=DUPLICATE_WINDOW_S,
                                max_age=30 * 24 * 3600.0, num_replicas=replicas))
    return configs


@dataclass(frozen=True)
class Plan:
    """How an existing stream differs from the wanted one: the settings to change, and the
    fixed ones that differ (left as they are)."""
    changes: dict
    fixed: dict

    @property
    def update(self) -> bool:
        return bool(self.changes)


def _same(current, wanted) -> bool:
    if isinstance(wanted, float) or isinstance(current, float):
        return abs(float(current or 0) - float(wanted or 0)) < 1e-3
    if isinstance(wanted, list):
        return sorted(current or []) == sorted(wanted)
    return current == wanted


def plan(current: StreamConfig, wanted: StreamConfig) -> Plan:
    """Compare only what `wanted` sets: the server's defaults for the rest are kept."""
    changes = {f: getattr(wanted, f) for f in TUNABLE
               if getattr(wanted, f) is not None and not _same(getattr(current, f), getattr(wanted, f))}
    fixed = {f: (getattr(current, f), getattr(wanted, f)) for f in FIXED
             if getattr(wanted, f) is not None and getattr(current, f) != getattr(wanted, f)}
    return Plan(changes, fixed)


async def reconcile_stream(js: JetStreamContext, wanted: StreamConfig) -> str:
    """Create `wanted` if missing, else update what differs. Returns CREATED, UPDATED,
    UNCHANGED or REFUSED. What the server refuses (say 3 replicas on a server that is not
    a cluster) is logged and the stream left as it is; JetStream being unavailable
    (electing, unreachable) raises for the caller to retry."""
    try:
        current = (await js.stream_info(wanted.name)).config
    except NotFoundError:
        try:
            await js.add_stream(wanted)
            log.info("stream.created", stream=wanted.name, replicas=wanted.num_replicas)
            return CREATED
        except APIError as error:
            if transient(error):
                raise
            try:
                current = (await js.stream_info(wanted.name)).config  # another process created it first
            except NotFoundError:
                log.error("stream.create_refused", stream=wanted.name, replicas=wanted.num_replicas,
                          error=_described(error))
                return REFUSED
    found = plan(current, wanted)
    if found.fixed:
        log.error("stream.setting_unchangeable", stream=wanted.name,
                  differs={f: {"is": str(getattr(c, "value", c)), "wanted": str(getattr(w, "value", w))}
                           for f, (c, w) in found.fixed.items()},
                  hint="recreate the stream (or move its data) to change these")
    if not found.update:
        return UNCHANGED
    # The fixed settings stay as they are, so the server accepts the rest.
    target = replace(wanted, **{f: getattr(current, f) for f in found.fixed})
    try:
        await js.update_stream(target)
    except APIError as error:
        if transient(error):
            raise
        log.error("stream.update_refused", stream=wanted.name, changes=_shown(found.changes),
                  error=_described(error))
        return REFUSED
    log.info("stream.reconciled", stream=wanted.name, changes=_shown(found.changes))
    return UPDATED


def _described(error: APIError) -> str:
    return f"{error.description or repr(error)} (code {error.code}, err_code {error.err_code})"


def _shown(changes: dict) -> dict:
    return {k: v if isinstance(v, (int, float, str, list)) else str(v) for k, v in changes.items()}


def transient(error: BaseException) -> bool:
    """JetStream cannot answer now (no meta leader yet, a stream leader being elected, no
    server reachable): worth trying again."""
    if isinstance(error, (ServiceUnavailableError, nats.errors.TimeoutError, asyncio.TimeoutError,
                          nats.errors.NoRespondersError, nats.errors.ConnectionClosedError,
                          nats.errors.ConnectionReconnectingError)):
        return True
    return isinstance(error, APIError) and error.err_code == INSUFFICIENT_RESOURCES


def retry_pause_s(attempt: int) -> float:
    """0.2 s doubling to 5 s, jittered so replicas starting together spread out."""
    return min(0.2 * (2 ** (attempt - 1)), 5.0) * random.uniform(0.8, 1.2)


async def ensure_streams(js: JetStreamContext, stop: asyncio.Event | None = None,
                         configs: list[StreamConfig] | None = None) -> dict[str, str] | None:
    """Bring every stream to this process's settings. Safe to run from every process at
    once. While JetStream is unavailable (a cluster electing its leaders) it waits and
    tries again until `stop` is set; then it returns None. Returns what happened to each
    stream."""
    outcomes: dict[str, str] = {}
    attempt = 0
    for wanted in configs if configs is not None else stream_configs():
        while True:
            try:
                outcomes[wanted.name] = await reconcile_stream(js, wanted)
                break
            except Exception as error:  # noqa: BLE001 - sorted by `transient` below
                if not transient(error):
                    raise
                attempt += 1
                log.warning("streams.unavailable", stream=wanted.name, attempt=attempt, error=repr(error)[:300])
                if await _stopped(stop, retry_pause_s(attempt)):
                    return None
    return outcomes


async def _stopped(stop: asyncio.Event | None, seconds: float) -> bool:
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
        return True
    except asyncio.TimeoutError:
        return False
