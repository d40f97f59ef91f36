"""The lease rules in memory (siyu_kit/lease.py's MongoLeases), for unit tests: one
conditional write each, with the same outcomes."""
from __future__ import annotations


class FakeLeases:
    def __init__(self):
        self.docs: dict[str, dict] = {}
        self.down = False  # the database away: every write fails

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("database away")

    def acquire(self, name: str, holder: str, now_ms: int, ttl_ms: int) -> int | None:
        self._check()
        doc = self.docs.get(name)
        if doc is not None and doc["expires_ms"] > now_ms:
            return None
        token = (doc["token"] if doc else 0) + 1
        self.docs[name] = {"holder": holder, "token": token, "expires_ms": now_ms + ttl_ms}
        return token

    def renew(self, name: str, holder: str, token: int, now_ms: int, ttl_ms: int) -> bool:
        self._check()
        doc = self.docs.get(name)
        if doc is None or doc["holder"] != holder or doc["token"] != token:
            return False
        doc["expires_ms"] = now_ms + ttl_ms
        return True

    def release(self, name: str, holder: str, token: int) -> bool:
        self._check()
        doc = self.docs.get(name)
        if doc is None or doc["holder"] != holder or doc["token"] != token:
            return False
        doc["expires_ms"] = 0
        return True
