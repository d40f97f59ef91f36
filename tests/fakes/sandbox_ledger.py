"""The sandbox provider's storage in memory (unit tests): the two collection calls
services/order/adapters/sandbox_ledger.py makes, with MongoDB's duplicate-key answer."""
from __future__ import annotations

import copy
from typing import Any

from pymongo.errors import DuplicateKeyError


class MemoryCollection:
    def __init__(self):
        self.docs: dict[str, dict[str, Any]] = {}

    def insert_one(self, doc: dict[str, Any]) -> None:
        if doc["_id"] in self.docs:
            raise DuplicateKeyError(f"E11000 duplicate key: {doc['_id']}")
        self.docs[doc["_id"]] = copy.deepcopy(doc)

    def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        found = self.docs.get(query["_id"])
        return copy.deepcopy(found) if found is not None else None

    def where(self, **match: Any) -> list[dict[str, Any]]:
        return [d for d in self.docs.values() if all(d.get(k) == v for k, v in match.items())]


class MemoryDatabase(dict):
    def __missing__(self, name: str) -> MemoryCollection:
        self[name] = MemoryCollection()
        return self[name]
