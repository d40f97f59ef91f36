"""How product listings sort and continue: every sort is a keyset on (sort value, product
id), so a page continues strictly after the last product it showed."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

NEWEST = "NEWEST"
PRICE_ASC = "PRICE_ASC"
PRICE_DESC = "PRICE_DESC"
SALES_DESC = "SALES_DESC"


@dataclass(frozen=True)
class Sort:
    field: str  # the stored field sorted on; ties go by product id in the same direction
    descending: bool


# Product ids are ULIDs, so sorting by id is sorting by creation time.
SORTS = {NEWEST: Sort("_id", True), PRICE_ASC: Sort("min_price", False), PRICE_DESC: Sort("min_price", True),
         SALES_DESC: Sort("sales", True)}


@dataclass(frozen=True)
class Key:
    """Where a listing stands: the sort value and id of the last product it passed."""
    value: int | str
    product_id: str


def key_of(sort: Sort, doc: dict) -> Key:
    value = doc["_id"] if sort.field == "_id" else int(doc.get(sort.field) or 0)
    return Key(value, doc["_id"])


def fingerprint(**filters) -> str:
    """A short digest of a listing's filters and sort: a page token carries it, so a token
    is only accepted by the listing that issued it."""
    canonical = json.dumps(filters, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
