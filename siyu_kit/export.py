"""Stored documents as the JSON of a member's data export (PIPL Art. 45)."""
from __future__ import annotations

from datetime import datetime
from typing import Any


def as_json(value: Any, hidden: tuple[str, ...]) -> Any:
    """`value` as plain JSON: datetimes as ISO text, anything else unknown as text, and every
    key containing one of the `hidden` words (sealed values, look-up hashes, internals)
    left out wherever it sits."""
    if isinstance(value, dict):
        return {str(k): as_json(v, hidden) for k, v in value.items() if not any(w in str(k) for w in hidden)}
    if isinstance(value, (list, tuple)):
        return [as_json(v, hidden) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
