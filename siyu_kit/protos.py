"""Small conversions between storage values and protobuf messages."""
from __future__ import annotations

from datetime import datetime, timezone

from google.protobuf import timestamp_pb2
from siyu.common.v1 import common_pb2

from siyu_kit.money import DEFAULT_CURRENCY

CHANNEL_BY_NAME = {"MINI_PROGRAM": common_pb2.CHANNEL_MINI_PROGRAM, "H5": common_pb2.CHANNEL_H5,
                   "LIVE": common_pb2.CHANNEL_LIVE}
CHANNEL_NAME = {v: k for k, v in CHANNEL_BY_NAME.items()}


def money(amount: int, currency: str = DEFAULT_CURRENCY) -> common_pb2.Money:
    return common_pb2.Money(amount=int(amount), currency=currency or DEFAULT_CURRENCY)


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def aware(value: datetime | str | None) -> datetime | None:
    """A stored datetime as an aware UTC datetime. Stored datetimes may come back naive,
    and the embedded server returns one written by `$set` as an ISO string."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def epoch_ms(value: datetime) -> int:
    """A time as integer epoch milliseconds: the portable way to store a time that is
    written by `$set` and queried by range (the embedded server turns a `$set` datetime
    into a string)."""
    return int(aware(value).timestamp() * 1000)


def now_ms() -> int:
    return epoch_ms(utcnow())


def to_storage_precision(value: datetime) -> datetime:
    """Drop what storage does not keep (below a millisecond), so a value returned from a
    write equals the same value read back later."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)
