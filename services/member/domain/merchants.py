"""Rules for merchants, channel keys and staff users' names."""
from __future__ import annotations

import hashlib
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CODE = re.compile(r"^[a-z0-9-]{2,40}$")
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
API_KEY = re.compile(r"^[\x21-\x7e]{16,128}$")
NAME_MAX = 100


def valid_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def key_hash(api_key: str) -> str:
    """Only this hash of a channel key is stored; the key itself never is."""
    return hashlib.sha256(api_key.encode()).hexdigest()
