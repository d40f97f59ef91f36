"""Guide performance (导购业绩): which guides an order, a viewer or a click counts for.

An order counts for the set of guides made of
- the guide its referral credits (Order.referral.guide_id: the buyer's exclusive guide, or
  the guide whose share code won the sale, by the merchant's rule),
- the guides running the persona it is attributed to (the persona named, else the one of
  the content, else of the live session, else of the share code),
- the staff sharer of its share code, when that is a guide's (stf_) code,
each once. That set is fixed the first time any event of the order is seen, so a persona
whose guides change later does not move an order between guides half way through its life.

Each guide's numbers are a funnel (funnels.GUIDE, keyed by the stf_ id) counted once per
order and event kind: "placed:<order>", "paid:<order>" and the refund's own id, so a
re-sent event of the same kind for the same order adds nothing. A store's numbers
(funnels.STORE, keyed by Order.referral.guide_store) and a guide's within a store
(funnels.GUIDE_STORE) count orders only: a viewer carries no store.

Viewers: a member who views or clicks a persona's, content item's or live session's page,
or opens a share code, is a unique viewer of each guide of it once per business day;
conversion is paid orders over those viewers (a viewer-day, as in every funnel's report).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from siyu_kit.ids import is_id

from services.content.domain import funnels

PLACED, PAID = "placed", "paid"
# A store as the order's referral names it; longer or other characters count for no store.
STORE_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_GUIDE_LEN = len("stf_") + 26
MAX_PAGE = 50


def is_guide(staff_id: str) -> bool:
    return is_id(staff_id, "stf")


def store_key(store: str) -> str:
    """The store an order counts for; "" when the referral names none we can key. A store
    never holds "_stf_", so the keys of one store's guides ("<store>_stf_…") are a prefix no
    other store's share."""
    return store if STORE_RE.match(store or "") and "_stf_" not in store else ""


def guide_store_ref(store: str, guide_id: str) -> str:
    return f"{store}_{guide_id}"


def split_guide_store(ref_id: str) -> tuple[str, str]:
    """(store, guide id) of a GUIDE_STORE funnel's key."""
    return ref_id[:-_GUIDE_LEN - 1], ref_id[-_GUIDE_LEN:]


def order_cause(kind: str, order_id: str) -> str:
    """What a guide's count applies once for: the order and the event's kind."""
    if kind not in (PLACED, PAID):
        raise ValueError(f"no order event kind {kind!r}")
    return f"{kind}:{order_id}"


@dataclass(frozen=True)
class OrderCredit:
    """Who an order counts for, fixed when it is first seen."""
    order_id: str
    guides: tuple[str, ...]  # sorted, each once
    referral_guide: str = ""
    store: str = ""

    def funnels(self, merchant_id: str) -> list[funnels.Funnel]:
        """The funnels each of the order's counts goes to."""
        result = [funnels.Funnel.of(merchant_id, funnels.GUIDE, g) for g in self.guides]
        if self.store:
            result.append(funnels.Funnel.of(merchant_id, funnels.STORE, self.store))
            if self.referral_guide:
                result.append(funnels.Funnel.of(merchant_id, funnels.GUIDE_STORE,
                                                guide_store_ref(self.store, self.referral_guide)))
        return result


def guides_of(referral_guide: str, persona_guides: Iterable[str], share_sharer: str = "") -> tuple[str, ...]:
    """The guides an order (or a viewer) counts for: the referral's guide, the persona's
    guides and a guide who shared the code, each once; anything not a stf_ id is dropped
    (a member who shared the code is a distributor, not a guide)."""
    found = {referral_guide, share_sharer, *persona_guides}
    return tuple(sorted(g for g in found if is_guide(g)))


def credit(order_id: str, referral_guide: str, persona_guides: Iterable[str], share_sharer: str = "",
           store: str = "") -> OrderCredit:
    referral = referral_guide if is_guide(referral_guide) else ""
    return OrderCredit(order_id=order_id, guides=guides_of(referral, persona_guides, share_sharer),
                       referral_guide=referral, store=store_key(store))
