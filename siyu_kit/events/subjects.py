"""Event subjects, read from the `(siyu.common.v1.event)` option on each event message.

Producers and consumers name the message type; the subject string lives only in the
proto, next to the message it carries."""
from __future__ import annotations

from functools import cache

from google.protobuf.message import Message
from siyu.common.v1 import common_pb2


@cache
def subjects_of(message_type: type[Message]) -> tuple[str, ...]:
    """Every subject the message is published on, as declared in its proto."""
    options = message_type.DESCRIPTOR.GetOptions()
    subjects = tuple(options.Extensions[common_pb2.event].subjects)
    if not subjects:
        raise ValueError(f"{message_type.DESCRIPTOR.full_name} declares no (siyu.common.v1.event) subjects")
    return subjects


def subject_of(message_type: type[Message], verb: str = "") -> str:
    """The subject of a message with one subject; for a message shared by several moves
    (ReservationChanged), the one ending in `.verb`."""
    subjects = subjects_of(message_type)
    if not verb:
        if len(subjects) != 1:
            raise ValueError(f"{message_type.DESCRIPTOR.full_name} has several subjects; name the verb")
        return subjects[0]
    for subject in subjects:
        if subject.rsplit(".", 1)[-1] == verb:
            return subject
    raise ValueError(f"{message_type.DESCRIPTOR.full_name} has no subject ending in .{verb}")
