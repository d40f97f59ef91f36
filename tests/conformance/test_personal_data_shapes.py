"""The query and update shapes of members' data exports
(services/member/adapters/personal_data_store.py, services/order/adapters/personal_data_store.py),
run through the adapters themselves: the unique (merchant, member, key) insert answering the
first export, the lease taken by a compare-and-set on the epoch-ms integer read (a second
taker loses), a dotted $set of a sealed part only by the lease's holder, expiry by an
epoch-ms range that unsets the parts, and the per-member reads of the export's parts."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from services.member.adapters import personal_data_store as store
from services.member.domain.personal_data import KEEP, LEASE, DataExport
from services.catalog.adapters import personal_data_store as catalog_store
from services.order.adapters import personal_data_store as order_store
from siyu_kit.ids import new_id
from siyu_kit.sealing import Sealer, new_key
from tests.support import new_merchant_id

NOW = datetime(2026, 6, 1, 4, 0, 0, 123000, tzinfo=timezone.utc)
SEALER = Sealer.from_setting(new_key())


@pytest.fixture
def exports(coll, monkeypatch):
    monkeypatch.setattr(store, "_col", lambda: coll)
    coll.create_index([("merchant_id", 1), ("member_id", 1), ("idempotency_key", 1)], unique=True)
    return store.DataExportRepository(SEALER)


def export_of(merchant: str, member: str, key: str = "k1") -> DataExport:
    return DataExport(id=new_id("dex"), merchant_id=merchant, member_id=member, idempotency_key=key, created_at=NOW)


async def test_one_export_per_key_the_lease_the_parts_and_expiry(exports, coll):
    merchant, member = new_merchant_id(), new_id("mem")
    first = await exports.add(export_of(merchant, member))
    again = await exports.add(export_of(merchant, member))
    assert again.id == first.id and again.created_at == NOW
    assert await exports.get(merchant, member, first.id) is not None
    assert await exports.get(merchant, new_id("mem"), first.id) is None
    assert await exports.get(new_merchant_id(), member, first.id) is None

    leased = await exports.lease_next("a", NOW)
    assert leased.id == first.id
    assert await exports.lease_next("b", NOW) is None  # held by a until the lease runs out
    leased.parts["member"] = json.dumps({"nickname": "小美"}, ensure_ascii=False)
    leased.gathered("member", NOW)
    assert await exports.save_part(leased, "b", "member") is False
    assert await exports.save_part(leased, "a", "member") is True
    raw = coll.find_one({"_id": first.id})
    assert raw["parts"]["member"].startswith("v1.") and raw["done"] == ["member"]
    assert (await exports.get(merchant, member, first.id)).parts == {"member": '{"nickname": "小美"}'}

    # Another replica takes it over once the lease ran out; the first holder writes nothing.
    later = NOW + LEASE + timedelta(seconds=1)
    taken = await exports.lease_next("b", later)
    assert taken.id == first.id and taken.done == ("member",)
    taken.parts["order"] = "{}"
    taken.gathered("order", later)
    assert await exports.save_part(taken, "a", "order") is False
    assert await exports.save_part(taken, "b", "order") is True
    assert (await exports.get(merchant, member, first.id)).state == "GATHERING"
    taken.parts["catalog"] = "{}"
    taken.gathered("catalog", later)
    assert await exports.save_part(taken, "b", "catalog") is True
    assert (await exports.get(merchant, member, first.id)).state == "GATHERING"
    taken.parts["content"] = "{}"
    taken.gathered("content", later)
    assert await exports.save_part(taken, "b", "content") is True
    ready = await exports.get(merchant, member, first.id)
    assert (ready.state, ready.steps_done, ready.expires_at) == ("READY", 4, later + KEEP)
    assert await exports.lease_next("c", later + LEASE * 10) is None

    assert await exports.expire_due(later + KEEP - timedelta(milliseconds=1), 10) == 0
    assert await exports.expire_due(later + KEEP, 10) == 1
    assert await exports.expire_due(later + KEEP, 10) == 0
    raw = coll.find_one({"_id": first.id})
    assert raw["state"] == "EXPIRED" and "parts" not in raw


async def test_the_member_and_order_parts_read_only_the_members_records(db, monkeypatch):
    monkeypatch.setattr(store, "_db", lambda: db)
    merchant, member, other = new_merchant_id(), new_id("mem"), new_id("mem")
    db["members"].insert_one({"_id": member, "merchant_id": merchant, "nickname": "小美", "phone_key": "x",
                              "outbox": [{"id": "e"}], "created_at": NOW})
    db["member_phones"].insert_one({"_id": new_id("mph"), "merchant_id": merchant, "member_id": member,
                                    "phone_sealed": SEALER.seal("13812348000", f"phone:{merchant}")})
    db["union_identities"].insert_one({"_id": new_id("idn"), "merchant_id": merchant, "member_id": member,
                                       "unionid": "union-abcdefgh"})
    for who in (member, other):
        db["points_entries"].insert_one({"_id": new_id("pte"), "merchant_id": merchant, "member_id": who,
                                         "points": 10})
    db["referrals"].insert_one({"_id": new_id("ref"), "merchant_id": merchant, "inviter_id": member,
                                "invitee_id": other, "unionid_hash": "h", "bound_at": NOW})
    part = await store.MemberOwnData(SEALER).gather(merchant, member)
    assert part["profile"]["nickname"] == "小美" and part["profile"]["phone_masked"] == "138****8000"
    assert "phone_key" not in part["profile"] and "outbox" not in part["profile"]
    assert part["profile"]["created_at"] == NOW.isoformat()
    assert part["identities"][0]["unionid"] == "unio****efgh"
    assert [e["member_id"] for e in part["points"]["entries"]] == [member]
    assert part["referral"]["invited"] == [{"member_id": other, "bound_at": NOW.isoformat(), "state": None}]

    monkeypatch.setattr(order_store, "_collection", lambda name: db[f"order_{name}"])
    db["order_orders"].insert_many([
        {"_id": new_id("ord"), "merchant_id": merchant, "member_id": member,
         "address": {"recipient": "张三", "phone_masked": "138****8000", "phone_sealed": "v1.x"}},
        {"_id": new_id("ord"), "merchant_id": merchant, "member_id": other}])
    orders = await order_store.MemberRecordStore().of_member(merchant, member, "orders")
    assert [o["member_id"] for o in orders] == [member]
    assert orders[0]["address"] == {"recipient": "张三", "phone_masked": "138****8000"}

    monkeypatch.setattr(catalog_store, "_collection", lambda name: db[f"catalog_{name}"])
    db["catalog_flash_sale_quotas"].insert_many([
        {"_id": f"fls_1:{member}", "merchant_id": merchant, "member_id": member, "used": 1, "holds": {"rsv_1": 1}},
        {"_id": f"fls_1:{other}", "merchant_id": merchant, "member_id": other, "used": 1}])
    quotas = await catalog_store.MemberRecordStore().of_member(merchant, member, "flash_sale_quotas")
    assert quotas == [{"_id": f"fls_1:{member}", "merchant_id": merchant, "member_id": member, "used": 1,
                       "holds": {"rsv_1": 1}}]


# ---- erasure ---------------------------------------------------------------------------------


async def test_erasure_marks_once_erases_the_members_part_and_counts_acknowledgements(db, monkeypatch):
    monkeypatch.setattr(store, "_db", lambda: db)
    monkeypatch.setattr("siyu_kit.repository.committed", lambda *_: None)
    erasures = store.ErasureRepository(SEALER, b"k" * 32)
    merchant, member, other = new_merchant_id(), new_id("mem"), new_id("mem")
    for who in (member, other):
        db["members"].insert_one({"_id": who, "merchant_id": merchant, "nickname": "小美", "avatar_url": "a",
                                  "birthday_md": "02-29", "phone_suffix": "8000", "token_version": 3,
                                  "version": 1})
        db["member_phones"].insert_one({"_id": new_id("mph"), "merchant_id": merchant, "member_id": who,
                                        "phone_sealed": SEALER.seal("13812348000", f"phone:{merchant}")})
        db["union_identities"].insert_one({"_id": new_id("idn"), "merchant_id": merchant, "member_id": who,
                                           "unionid": f"union-{who}"})
        for name in ("channel_identities", "address_books", "sms_challenges", "data_exports"):
            db[name].insert_one({"_id": new_id("x"), "merchant_id": merchant, "member_id": who})
    assert await erasures.get(merchant, member) is None
    assert await erasures.start(merchant, member, NOW) is True
    assert await erasures.start(merchant, member, NOW) is False  # $nin guard: once
    doc = db["members"].find_one({"_id": member})
    assert (doc["erasure_state"], doc["token_version"], len(doc["outbox"])) == ("ERASING", 4, 1)
    event = next(iter(doc["outbox"].values()))
    assert event["subject"] == "siyu.member.member.erased", event

    await erasures.erase_own_data(merchant, member)
    await erasures.erase_own_data(merchant, member)  # a repeat finds nothing more
    doc = db["members"].find_one({"_id": member})
    assert doc["nickname"] == "" and not {"avatar_url", "birthday_md", "phone_suffix"} & set(doc)
    for name in ("member_phones", "union_identities", "channel_identities", "address_books", "sms_challenges",
                 "data_exports"):
        assert db[name].count_documents({"merchant_id": merchant, "member_id": member}) == 0
        assert db[name].count_documents({"merchant_id": merchant, "member_id": other}) == 1
    assert db["referral_guard"].count_documents({"merchant_id": merchant, "member_id": member}) == 2
    assert db["members"].find_one({"_id": other})["nickname"] == "小美"

    for service in ("member", "order", "content"):
        assert (await erasures.acknowledge(merchant, member, service)).state == "ERASING"
    done = await erasures.acknowledge(merchant, member, "catalog")
    assert done.state == "ERASED" and done.complete
    assert (await erasures.acknowledge(merchant, member, "order")).state == "ERASED"
    assert await erasures.acknowledge(merchant, other, "order") is None  # $in guard
    assert "erasure_acks" not in db["members"].find_one({"_id": other})


async def test_the_orders_of_an_erased_member_lose_their_personal_data_on_their_version(db, monkeypatch):
    monkeypatch.setattr(order_store, "_collection", lambda name: db[f"erase_{name}"])
    merchant, member, other = new_merchant_id(), new_id("mem"), new_id("mem")
    address = {"address_id": "adr_1", "recipient": "张三", "phone_masked": "138****8000", "phone_sealed": "v1.x",
               "province_code": "330000", "province_name": "浙江省", "detail": "文三路 90 号"}
    mine, unpaid, theirs = new_id("ord"), new_id("ord"), new_id("ord")
    db["erase_orders"].insert_many([
        {"_id": mine, "merchant_id": merchant, "member_id": member, "state": "PAID", "shipping_address": address,
         "remark": "ring twice", "version": 3},
        {"_id": unpaid, "merchant_id": merchant, "member_id": member, "state": "PENDING_PAYMENT", "version": 1},
        {"_id": theirs, "merchant_id": merchant, "member_id": other, "state": "PENDING_PAYMENT",
         "shipping_address": address, "version": 1}])
    db["erase_carts"].insert_many([{"_id": new_id("crt"), "merchant_id": merchant, "member_id": who}
                                   for who in (member, other)])
    orders = order_store.MemberOrderStore()
    assert await orders.unpaid_order_ids(merchant, member) == [unpaid]
    assert await orders.anonymise(merchant, member) == 1
    assert await orders.anonymise(merchant, member) == 0
    doc = db["erase_orders"].find_one({"_id": mine})
    assert doc["shipping_address"] == {"address_id": "adr_1", "province_code": "330000", "province_name": "浙江省",
                                       "recipient": "", "phone_masked": "", "detail": ""}
    assert (doc["remark"], doc["version"]) == ("", 4)
    assert db["erase_orders"].find_one({"_id": theirs})["shipping_address"] == address
    assert [c["member_id"] for c in db["erase_carts"].find({"merchant_id": merchant})] == [other]


def test_an_erasure_key_names_its_first_member(coll):
    m = new_id("mch")
    assert store.claim_erasure_key(coll, m, "k-1", "mem_a") == "mem_a"
    assert store.claim_erasure_key(coll, m, "k-1", "mem_a") == "mem_a"
    assert store.claim_erasure_key(coll, m, "k-1", "mem_b") == "mem_a"
    assert store.claim_erasure_key(coll, new_id("mch"), "k-1", "mem_b") == "mem_b"
