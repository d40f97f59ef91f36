"""What the sandbox provider holds, in MongoDB, so it keys its calls as real providers do:
one record per refund (out_refund_no = our refund id), transfer (out_bill_no = the
transfer id) and sharing order (out_order_no = the split id, and each return by its own
id). The first call writes the record (insert, the key as `_id`); a repeat with the same
parameters answers that record; the same key with other parameters (another amount,
payment, merchant or receivers) is refused with PROVIDER_KEY_REUSED, as WeChat answers
INVALID_REQUEST, and nothing moves."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from pymongo.errors import DuplicateKeyError

from siyu_kit.db import run_sync
from siyu_kit.errors import FailedPrecondition

KEY_REUSED = "PROVIDER_KEY_REUSED"
REFUNDS = "sandbox_refunds"
TRANSFERS = "sandbox_transfers"
SHARES = "sandbox_shares"


def keyed(collection, key: str, request: dict[str, Any], answer: Callable[[], dict[str, Any]],
          at: datetime) -> dict[str, Any]:
    """The record of `key`: written now from `request` and `answer()` when the key is new,
    else the one written first, if it was asked for with the same request."""
    doc = {"_id": key, **request, **answer(), "at": at}
    try:
        collection.insert_one(doc)
        return doc
    except DuplicateKeyError:
        first = collection.find_one({"_id": key})
    if first is None or any(first.get(name) != value for name, value in request.items()):
        raise FailedPrecondition(f"the key {key} was used before with other parameters", reason=KEY_REUSED)
    return first


class SandboxLedger:
    """The sandbox provider's records; `db` is a pymongo database, or a callable giving it
    (read at the first call, so a process that only signs never touches storage)."""

    def __init__(self, db):
        self._db = db

    def _c(self, name: str):
        db = self._db() if callable(self._db) else self._db
        return db[name]

    async def keyed(self, name: str, key: str, request: dict[str, Any], answer: Callable[[], dict[str, Any]],
                    at: datetime) -> dict[str, Any]:
        return await run_sync(keyed, self._c(name), key, request, answer, at)

    async def find(self, name: str, key: str) -> dict[str, Any] | None:
        return await run_sync(self._c(name).find_one, {"_id": key})
