"""JetStream streams: one per service, one for live rooms, and the dead-letter stream."""
from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from siyu_kit.config import SERVICE_NAMES

DLQ_STREAM = "SIYU_DLQ"
DLQ_PREFIX = "siyu.dlq"
DUPLICATE_WINDOW_S = 120.0
# Live-room events (`siyu.live.room.<live_session_id>`): many, small, and worth replaying
# only to a viewer who reconnects during or shortly after the session.
LIVE_STREAM_TOPIC = "live"
LIVE_MAX_AGE_S = 24 * 3600.0


def stream_name(service: str) -> str:
    return f"SIYU_{service.upper()}"


def subject_of(service: str, entity: str, verb: str) -> str:
    return f"siyu.{service}.{entity}.{verb}"


async def ensure_streams(js: JetStreamContext) -> None:
    """Create every stream if missing. Safe to run from every process at once."""
    configs = [
        StreamConfig(name=stream_name(s), subjects=[f"siyu.{s}.>"], storage=StorageType.FILE,
                     retention=RetentionPolicy.LIMITS, duplicate_window=DUPLICATE_WINDOW_S,
                     max_age=7 * 24 * 3600.0)
        for s in SERVICE_NAMES
    ]
    configs.append(StreamConfig(name=stream_name(LIVE_STREAM_TOPIC), subjects=[f"siyu.{LIVE_STREAM_TOPIC}.>"],
                                storage=StorageType.FILE, retention=RetentionPolicy.LIMITS,
                                duplicate_window=DUPLICATE_WINDOW_S, max_age=LIVE_MAX_AGE_S))
    configs.append(StreamConfig(name=DLQ_STREAM, subjects=[f"{DLQ_PREFIX}.>"], storage=StorageType.FILE,
                                retention=RetentionPolicy.LIMITS, max_age=30 * 24 * 3600.0))
    for config in configs:
        try:
            await js.stream_info(config.name)
        except Exception:  # noqa: BLE001 - not found: create it
            try:
                await js.add_stream(config)
            except BadRequestError:
                pass  # another process created it first
