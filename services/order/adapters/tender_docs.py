"""An order's stored-value facts as stored inside the order document (`stored_value`,
absent on orders that never met stored value)."""
from __future__ import annotations

from services.order.domain.tender import Hold, RechargeTerms, RefundSplit, StoredValue, Tender


def stored_value_doc(sv: StoredValue) -> dict:
    doc: dict = {"kind": sv.kind, "hold": sv.hold.value,
                 "splits": {k: {"balance": s.balance, "provider": s.provider} for k, s in sv.splits.items()}}
    if sv.recharge is not None:
        doc["recharge"] = {"package_id": sv.recharge.package_id, "principal": sv.recharge.principal,
                           "bonus": sv.recharge.bonus}
    if sv.tender is not None:
        t = sv.tender
        doc["tender"] = {"balance": t.balance, "provider": t.provider, "balance_refunded": t.balance_refunded,
                         "provider_refunded": t.provider_refunded}
    return doc


def stored_value_of(doc: dict | None) -> StoredValue:
    if not doc:
        return StoredValue()
    r, t = doc.get("recharge"), doc.get("tender")
    return StoredValue(
        kind=doc.get("kind") or "",
        recharge=RechargeTerms(r["package_id"], int(r["principal"]), int(r["bonus"])) if r else None,
        tender=Tender(int(t["balance"]), int(t["provider"]), int(t.get("balance_refunded") or 0),
                      int(t.get("provider_refunded") or 0)) if t else None,
        hold=Hold(doc.get("hold") or ""),
        splits={k: RefundSplit(int(s["balance"]), int(s["provider"])) for k, s in (doc.get("splits") or {}).items()})
