"""What every fake repository shares: the version compare-and-set a real save makes."""
from __future__ import annotations

import copy
from typing import Any

from siyu_kit.aggregate import StaleVersion


def require_version(stored: Any, aggregate: Any) -> None:
    """Raises StaleVersion unless the stored copy is the merchant's and at the version the
    aggregate was read at: the filter of the real repository's conditional update."""
    if stored is None or stored.merchant_id != aggregate.merchant_id or stored.version != aggregate.version:
        raise StaleVersion(f"{aggregate.id} changed since it was read")


class VersionedStore:
    """Aggregates kept as copies by id; `save` is a compare-and-set on the version.
    `writes_by_others` makes that many saves lose to a writer that came first."""

    def __init__(self):
        self.items: dict = {}
        self.writes_by_others = 0
        self.saves = 0

    def _compare_and_set(self, item: Any) -> None:
        stored = self.items[item.id]
        if self.writes_by_others:
            self.writes_by_others -= 1
            stored.version += 1
        require_version(stored, item)
        item.version = item.next_version
        self.items[item.id] = copy.deepcopy(item)
        self.saves += 1
