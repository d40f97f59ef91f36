"""Community group buy in MongoDB.

- `community_leaders`: one per leader, unique per merchant and member; the pickup point's
  contact phone sealed (siyu_kit.sealing, context = the merchant), like a supplier's.
- `community_campaigns`: one per campaign, unique per merchant and idempotency key; its
  closing is a write on its version with community_campaign.closed in its outbox.
- `community_settings`: the uncollected rule, one per merchant.
- `community_codes`: one per pickup code of a campaign's leader (`_id` names all four), so
  a code is unique in its batch by the insert alone.
- `community_limits`: a member's units of a SKU in a campaign, moved by one conditional
  `$inc` (never read and written back).
- `community_batches`: one per campaign and leader once delivered, with
  community_batch.delivered in its outbox; `uncollected_open` until the rule was applied.
- `community_pickups`: one per collected order, with community_pickup.confirmed.
Community orders are ordinary orders; their reads go by `activity.activity_id`."""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from pymongo import ASCENDING

from siyu_kit.aggregate import StaleVersion
from siyu_kit.db import run_sync
from siyu_kit.protos import aware, epoch_ms
from siyu_kit.repository import insert_new, save_change
from siyu_kit.sealing import Sealer

from services.order.adapters import community_messages as cm
from services.order.adapters.documents import OrderDoc, order_of
from services.order.application.community_ports import Batch
from services.order.domain.community import (Campaign, CampaignLine, CommunityLeader, CommunitySettings, LeaderState,
                                             PickupPoint, UncollectedAction)
from services.order.domain.orders import Order

_HIDDEN = {"outbox": 0}
_ORDER_DATES = ("created_at", "expires_at", "paid_at", "cancelled_at", "delivered_at", "completed_at", "settled_at")


def _db():
    return OrderDoc._get_collection().database


def _c(name: str):
    return _db()[name]


def ensure_indexes() -> None:
    _c("community_leaders").create_index([("merchant_id", ASCENDING), ("member_id", ASCENDING)], unique=True)
    _c("community_leaders").create_index([("merchant_id", ASCENDING), ("state", ASCENDING)])
    _c("community_campaigns").create_index([("merchant_id", ASCENDING), ("idempotency_key", ASCENDING)], unique=True)
    _c("community_campaigns").create_index([("merchant_id", ASCENDING), ("cut_off_ms", ASCENDING)])
    _c("community_campaigns").create_index([("closed", ASCENDING), ("cut_off_ms", ASCENDING)])
    _c("community_batches").create_index([("uncollected_open", ASCENDING), ("delivered_ms", ASCENDING)])
    OrderDoc._get_collection().create_index([("merchant_id", ASCENDING), ("activity.activity_id", ASCENDING),
                                             ("activity.leader_id", ASCENDING)])


# ---- leaders ---------------------------------------------------------------------------

class MongoLeaders:
    def __init__(self, sealer: Sealer):
        self.sealer = sealer

    @staticmethod
    def _ctx(merchant_id: str) -> str:
        return f"community-leader:{merchant_id}"

    def _doc(self, l: CommunityLeader) -> dict:
        p = l.pickup_point
        return {"_id": l.id, "merchant_id": l.merchant_id, "member_id": l.member_id, "name": l.name,
                "pickup_point": {"pickup_point_id": p.pickup_point_id, "name": p.name, "region_code": p.region_code,
                                 "detail": p.detail, "opening_hours": p.opening_hours,
                                 "capacity_per_day": p.capacity_per_day,
                                 "phone_sealed": self.sealer.seal(p.contact_phone, self._ctx(l.merchant_id))},
                "state": l.state.value, "enabled": int(l.enabled), "reject_reason": l.reject_reason,
                "created_at": l.created_at, "version": l.version}

    def _of(self, d: dict | None) -> CommunityLeader | None:
        if d is None:
            return None
        p = d["pickup_point"]
        point = PickupPoint(pickup_point_id=p["pickup_point_id"], name=p["name"], region_code=p["region_code"],
                            detail=p["detail"], opening_hours=p.get("opening_hours") or "",
                            capacity_per_day=p.get("capacity_per_day") or 0,
                            contact_phone=self.sealer.open(p["phone_sealed"], self._ctx(d["merchant_id"])))
        return CommunityLeader(id=d["_id"], merchant_id=d["merchant_id"], member_id=d["member_id"], name=d["name"],
                               pickup_point=point, created_at=aware(d["created_at"]), state=LeaderState(d["state"]),
                               enabled=bool(d.get("enabled")), reject_reason=d.get("reject_reason") or "",
                               version=d["version"])

    async def get(self, merchant_id: str, leader_id: str) -> CommunityLeader | None:
        return self._of(await run_sync(_c("community_leaders").find_one, {"_id": leader_id, "merchant_id": merchant_id}))

    async def of_member(self, merchant_id: str, member_id: str) -> CommunityLeader | None:
        return self._of(await run_sync(_c("community_leaders").find_one,
                                       {"merchant_id": merchant_id, "member_id": member_id}))

    async def add(self, leader: CommunityLeader) -> bool:
        return await run_sync(insert_new, _c("community_leaders"), self._doc(leader))

    async def save(self, leader: CommunityLeader) -> None:
        await run_sync(save_change, _c("community_leaders"), {"_id": leader.id, "merchant_id": leader.merchant_id},
                       {"$set": {"state": leader.state.value, "enabled": int(leader.enabled),
                                 "reject_reason": leader.reject_reason, "name": leader.name,
                                 "pickup_point": self._doc(leader)["pickup_point"]}}, version=leader.version)
        leader.version += 1

    def _page(self, merchant_id: str, state: str, after_id: str, limit: int) -> list[dict]:
        query: dict = {"merchant_id": merchant_id}
        if state:
            query["state"] = state
        if after_id:
            query["_id"] = {"$gt": after_id}
        return list(_c("community_leaders").find(query).sort("_id", ASCENDING).limit(limit))

    async def page(self, merchant_id: str, state: str, after_id: str, limit: int) -> list[CommunityLeader]:
        return [self._of(d) for d in await run_sync(self._page, merchant_id, state, after_id, limit)]


# ---- campaigns -------------------------------------------------------------------------

def _campaign_doc(c: Campaign) -> dict:
    return {"_id": c.id, "merchant_id": c.merchant_id, "idempotency_key": c.idempotency_key,
            "request_hash": c.request_hash, "title": c.title,
            "lines": [{"sku_id": l.sku_id, "title": l.title, "price": l.price, "list_price": l.list_price,
                       "per_member_limit": l.per_member_limit} for l in c.lines],
            "starts_at": c.starts_at, "cut_off_at": c.cut_off_at, "cut_off_ms": epoch_ms(c.cut_off_at),
            "pickup_date": c.pickup_date, "leader_rate_bp": c.leader_rate_bp, "created_at": c.created_at,
            "closed": 0, "version": c.version}


def _campaign_of(d: dict | None) -> Campaign | None:
    if d is None:
        return None
    return Campaign(id=d["_id"], merchant_id=d["merchant_id"], title=d["title"],
                    lines=tuple(CampaignLine(**l) for l in d["lines"]), starts_at=aware(d["starts_at"]),
                    cut_off_at=aware(d["cut_off_at"]), pickup_date=d["pickup_date"],
                    leader_rate_bp=d["leader_rate_bp"], created_at=aware(d["created_at"]),
                    idempotency_key=d.get("idempotency_key") or "", request_hash=d.get("request_hash") or "",
                    closed_at=aware(d.get("closed_at")), version=d["version"])


class MongoCampaigns:
    async def get(self, merchant_id: str, campaign_id: str) -> Campaign | None:
        return _campaign_of(await run_sync(_c("community_campaigns").find_one,
                                           {"_id": campaign_id, "merchant_id": merchant_id}, _HIDDEN))

    async def by_key(self, merchant_id: str, idempotency_key: str) -> Campaign | None:
        return _campaign_of(await run_sync(_c("community_campaigns").find_one,
                                           {"merchant_id": merchant_id, "idempotency_key": idempotency_key}, _HIDDEN))

    async def add(self, campaign: Campaign) -> bool:
        return await run_sync(insert_new, _c("community_campaigns"), _campaign_doc(campaign))

    async def save(self, campaign: Campaign) -> None:
        version = campaign.version + 1
        events = [cm.campaign_event(campaign, e, version) for e in campaign.pull_events()]
        sets = {"closed": 1 if campaign.closed_at else 0, "closed_at": campaign.closed_at}
        await run_sync(save_change, _c("community_campaigns"), {"_id": campaign.id, "merchant_id": campaign.merchant_id},
                       {"$set": sets}, events, version=campaign.version)
        campaign.version = version

    def _open(self, merchant_id: str, now_ms: int, limit: int) -> list[dict]:
        return list(_c("community_campaigns").find({"merchant_id": merchant_id, "cut_off_ms": {"$gt": now_ms}},
                                                   _HIDDEN).sort("cut_off_ms", ASCENDING).limit(limit))

    async def open_ones(self, merchant_id: str, now: datetime, limit: int) -> list[Campaign]:
        return [_campaign_of(d) for d in await run_sync(self._open, merchant_id, epoch_ms(now), limit)]

    def _due(self, now_ms: int, limit: int) -> list[dict]:
        return list(_c("community_campaigns").find({"closed": 0, "cut_off_ms": {"$lte": now_ms}}, _HIDDEN)
                    .sort("cut_off_ms", ASCENDING).limit(limit))

    async def due_to_close(self, now: datetime, limit: int) -> list[Campaign]:
        return [_campaign_of(d) for d in await run_sync(self._due, epoch_ms(now), limit)]


# ---- settings --------------------------------------------------------------------------

class MongoCommunitySettings:
    async def of_merchant(self, merchant_id: str) -> CommunitySettings:
        d = await run_sync(_c("community_settings").find_one, {"_id": merchant_id})
        if not d:
            return CommunitySettings()
        return CommunitySettings(uncollected_days=d.get("uncollected_days", CommunitySettings().uncollected_days),
                                 uncollected_action=UncollectedAction(d.get("uncollected_action") or "REFUND"))

    async def put(self, merchant_id: str, settings: CommunitySettings) -> None:
        await run_sync(_c("community_settings").update_one, {"_id": merchant_id},
                       {"$set": {"uncollected_days": settings.uncollected_days,
                                 "uncollected_action": settings.uncollected_action.value}}, upsert=True)


# ---- orders of a campaign --------------------------------------------------------------

def _order(d: dict) -> Order:
    for key in _ORDER_DATES:
        if d.get(key) is not None:
            d[key] = aware(d[key])
    return order_of(d)


SHOWN = ["PAID", "SHIPPED", "DELIVERED", "COMPLETED"]


class MongoCommunityOrders:
    def _find(self, query: dict) -> list[dict]:
        return list(OrderDoc._get_collection().find(query, _HIDDEN).sort("_id", ASCENDING).limit(5000))

    async def of_batch(self, merchant_id: str, campaign_id: str, leader_id: str,
                       states: Sequence[str] = ()) -> list[Order]:
        query = {"merchant_id": merchant_id, "activity.activity_id": campaign_id, "activity.leader_id": leader_id,
                 "state": {"$in": list(states or SHOWN)}}
        return [_order(d) for d in await run_sync(self._find, query)]

    async def of_campaign(self, merchant_id: str, campaign_id: str, states: Sequence[str]) -> list[Order]:
        query = {"merchant_id": merchant_id, "activity.activity_id": campaign_id, "state": {"$in": list(states)}}
        return [_order(d) for d in await run_sync(self._find, query)]

    async def by_code(self, merchant_id: str, campaign_id: str, leader_id: str, pickup_code: str) -> Order | None:
        query = {"merchant_id": merchant_id, "activity.activity_id": campaign_id, "activity.leader_id": leader_id,
                 "activity.pickup_code": pickup_code}
        found = await run_sync(self._find, query)
        return _order(found[0]) if found else None


# ---- codes, limits, batches, pickups ---------------------------------------------------

class MongoPickupCodes:
    async def claim(self, merchant_id: str, campaign_id: str, leader_id: str, code: str, order_id: str) -> bool:
        doc = {"_id": f"{merchant_id}:{campaign_id}:{leader_id}:{code}", "merchant_id": merchant_id,
               "order_id": order_id}
        return await run_sync(insert_new, _c("community_codes"), doc)


class MongoMemberLimits:
    @staticmethod
    def _id(merchant_id: str, campaign_id: str, member_id: str, sku_id: str) -> str:
        return f"{merchant_id}:{campaign_id}:{member_id}:{sku_id}"

    def _take(self, key: str, merchant_id: str, units: int, limit: int) -> bool:
        if units > limit:
            return False
        # The document first (a duplicate key means it exists), then one conditional $inc.
        insert_new(_c("community_limits"), {"_id": key, "merchant_id": merchant_id, "units": 0})
        result = _c("community_limits").update_one({"_id": key, "units": {"$lte": limit - units}},
                                                   {"$inc": {"units": units}})
        return result.modified_count == 1

    async def take(self, merchant_id: str, campaign_id: str, member_id: str, sku_id: str, units: int,
                   limit: int) -> bool:
        return await run_sync(self._take, self._id(merchant_id, campaign_id, member_id, sku_id), merchant_id,
                              units, limit)

    async def give_back(self, merchant_id: str, campaign_id: str, member_id: str, sku_id: str, units: int) -> None:
        await run_sync(_c("community_limits").update_one,
                       {"_id": self._id(merchant_id, campaign_id, member_id, sku_id), "units": {"$gte": units}},
                       {"$inc": {"units": -units}})


def _batch_of(d: dict | None) -> Batch | None:
    if d is None:
        return None
    return Batch(merchant_id=d["merchant_id"], campaign_id=d["campaign_id"], leader_id=d["leader_id"],
                 delivered_at=aware(d["delivered_at"]), order_ids=tuple(d.get("order_ids") or ()),
                 uncollected_done=not d.get("uncollected_open"), version=d.get("version", 1))


class MongoBatches:
    @staticmethod
    def _id(merchant_id: str, campaign_id: str, leader_id: str) -> str:
        return f"{merchant_id}:{campaign_id}:{leader_id}"

    async def get(self, merchant_id: str, campaign_id: str, leader_id: str) -> Batch | None:
        return _batch_of(await run_sync(_c("community_batches").find_one,
                                        {"_id": self._id(merchant_id, campaign_id, leader_id)}, _HIDDEN))

    def _delivered(self, b: Batch) -> None:
        key = self._id(b.merchant_id, b.campaign_id, b.leader_id)
        doc = {"_id": key, "merchant_id": b.merchant_id, "campaign_id": b.campaign_id, "leader_id": b.leader_id,
               "delivered_at": b.delivered_at, "delivered_ms": epoch_ms(b.delivered_at),
               "order_ids": list(b.order_ids), "uncollected_open": 1, "version": 1}
        if insert_new(_c("community_batches"), doc, [cm.batch_event(b, key, b.order_ids, 1)]):
            return
        # Delivered before: the orders this call delivered join it, and the rule is due
        # again; the whole list is set on the version read.
        for _ in range(5):
            current = _c("community_batches").find_one({"_id": key}, _HIDDEN)
            ids = list(dict.fromkeys(list(current.get("order_ids") or ()) + list(b.order_ids)))
            try:
                save_change(_c("community_batches"), {"_id": key, "merchant_id": b.merchant_id},
                            {"$set": {"order_ids": ids, "uncollected_open": 1}},
                            [cm.batch_event(b, key, b.order_ids, current["version"] + 1)], version=current["version"])
                return
            except StaleVersion:
                continue
        raise StaleVersion(f"community batch {key} kept changing")

    async def delivered(self, batch: Batch) -> None:
        await run_sync(self._delivered, batch)

    def _open(self, limit: int) -> list[dict]:
        return list(_c("community_batches").find({"uncollected_open": 1}, _HIDDEN)
                    .sort("delivered_ms", ASCENDING).limit(limit))

    async def open_for_uncollected(self, limit: int) -> list[Batch]:
        return [_batch_of(d) for d in await run_sync(self._open, limit)]

    async def uncollected_done(self, batch: Batch) -> bool:
        """On the version read: a batch that grew meanwhile stays open."""
        result = await run_sync(_c("community_batches").update_one,
                                {"_id": self._id(batch.merchant_id, batch.campaign_id, batch.leader_id),
                                 "uncollected_open": 1, "version": batch.version},
                                {"$set": {"uncollected_open": 0}, "$inc": {"version": 1}})
        return result.modified_count == 1


class MongoPickups:
    async def record(self, merchant_id: str, order: Order, confirmed_by: str, at: datetime) -> None:
        key = f"{merchant_id}:{order.id}"
        doc = {"_id": key, "merchant_id": merchant_id, "order_id": order.id, "confirmed_by": confirmed_by, "at": at}
        await run_sync(insert_new, _c("community_pickups"), doc, [cm.pickup_event(merchant_id, order, confirmed_by, at)])


OUTBOX_COLLECTIONS = ("community_campaigns", "community_batches", "community_pickups")


def outbox_collections() -> list:
    return [_c(name) for name in OUTBOX_COLLECTIONS]
