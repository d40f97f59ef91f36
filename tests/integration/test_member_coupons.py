"""Coupons over the member service's real gRPC port, MongoDB and NATS: a template's
lifecycle, claims (exact under concurrent callers), the member's coupons and the cart's,
an order's lock, use and restore, grant jobs run by the service's job, the new-member gift
on the registration event, and what bad input, other merchants and wrong roles get."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import grpc
import nats
from siyu.member.v1 import events_pb2, member_pb2 as pb, member_pb2_grpc

from siyu_kit.events.outbox import decode
from siyu_kit.ids import new_id
from siyu_kit.protos import timestamp
from tests.support import (database_fixture, field_violations, metadata, new_merchant_id, reason, rpc_error,
                           stub_fixture, wait_until)
from tests.support.member import login

stub = stub_fixture("member", member_pb2_grpc.MemberServiceStub)
db = database_fixture("member")

SKU, PRD, PRD_OTHER = new_id("sku"), new_id("prd"), new_id("prd")


def operator(mid):
    return metadata(mid, staff_id=new_id("stf"), roles=("OPERATOR",))


def as_role(mid, role):
    return metadata(mid, staff_id=new_id("stf"), roles=(role,))


def as_member(mid, member_id):
    return metadata(mid, channel="H5", member_id=member_id)


def order_service(mid):
    return metadata(mid, service="order")


def amount_off(**extra) -> dict:
    fields = dict(name="¥10 off ¥100", rule=pb.CouponRule(kind=pb.COUPON_KIND_AMOUNT_OFF, threshold=10_000,
                                                          amount_off=1_000, scope=pb.COUPON_SCOPE_ALL),
                  validity=pb.CouponValidity(days=7), total=100, per_member_limit=1)
    fields.update(extra)
    return fields


def creation(**extra) -> pb.CreateCouponTemplateRequest:
    """A creation request with a key of its own (unless one is given)."""
    fields = amount_off(**extra)
    fields.setdefault("idempotency_key", new_id("k")[-20:])
    return pb.CreateCouponTemplateRequest(**fields)


def active_template(stub, mid, **extra) -> pb.CouponTemplate:
    created = stub.CreateCouponTemplate(creation(**extra), metadata=operator(mid))
    return stub.SetCouponTemplateState(pb.SetCouponTemplateStateRequest(
        template_id=created.template.template_id, state=pb.COUPON_TEMPLATE_STATE_ACTIVE),
        metadata=operator(mid)).template


def member(stub, mid, name="u") -> str:
    return login(stub, mid, f"{name}-{new_id('u')[-8:]}").member.member_id


def claim(stub, mid, member_id, template_id, key=None):
    return stub.ClaimCoupon(pb.ClaimCouponRequest(template_id=template_id, idempotency_key=key or new_id("k")[-20:]),
                            metadata=as_member(mid, member_id))


def line(price=6_000, qty=2, product=PRD):
    return pb.CouponLine(sku_id=SKU, product_id=product, unit_price=price, quantity=qty)


def test_a_template_is_designed_activated_paused_and_ended(stub, db):
    mid = new_merchant_id()
    draft = stub.CreateCouponTemplate(creation(), metadata=operator(mid)).template
    assert draft.state == pb.COUPON_TEMPLATE_STATE_DRAFT and draft.template_id.startswith("cpt_")
    edited = stub.UpdateCouponTemplate(pb.UpdateCouponTemplateRequest(
        template_id=draft.template_id, **amount_off(name="¥20 off ¥100", total=50)), metadata=operator(mid)).template
    assert (edited.name, edited.total) == ("¥20 off ¥100", 50)
    moved = stub.SetCouponTemplateState(pb.SetCouponTemplateStateRequest(
        template_id=draft.template_id, state=pb.COUPON_TEMPLATE_STATE_ACTIVE), metadata=operator(mid)).template
    assert moved.state == pb.COUPON_TEMPLATE_STATE_ACTIVE
    refused = rpc_error(stub.UpdateCouponTemplate, pb.UpdateCouponTemplateRequest(
        template_id=draft.template_id, **amount_off()), metadata=operator(mid))
    assert reason(refused) == "COUPON_TEMPLATE_NOT_EDITABLE"
    stub.SetCouponTemplateState(pb.SetCouponTemplateStateRequest(
        template_id=draft.template_id, state=pb.COUPON_TEMPLATE_STATE_PAUSED), metadata=operator(mid))
    paused = rpc_error(claim, stub, mid, member(stub, mid), draft.template_id)
    assert reason(paused) == "COUPON_NOT_CLAIMABLE"
    stub.SetCouponTemplateTotal(pb.SetCouponTemplateTotalRequest(template_id=draft.template_id, total=0),
                                metadata=operator(mid))
    ended = stub.SetCouponTemplateState(pb.SetCouponTemplateStateRequest(
        template_id=draft.template_id, state=pb.COUPON_TEMPLATE_STATE_ENDED), metadata=operator(mid)).template
    assert ended.state == pb.COUPON_TEMPLATE_STATE_ENDED and ended.total == 0
    back = rpc_error(stub.SetCouponTemplateState, pb.SetCouponTemplateStateRequest(
        template_id=draft.template_id, state=pb.COUPON_TEMPLATE_STATE_ACTIVE), metadata=operator(mid))
    assert reason(back) == "STATUS_TRANSITION"
    listed = stub.ListCouponTemplates(pb.ListCouponTemplatesRequest(state=pb.COUPON_TEMPLATE_STATE_ENDED),
                                      metadata=operator(mid)).templates
    assert [t.template_id for t in listed] == [draft.template_id]
    stored = db.coupon_templates.find_one({"_id": draft.template_id, "merchant_id": mid})
    # Six moves, six events in the document's outbox, each published by the relay.
    assert stored["state"] == "ENDED" and stored["version"] == 6 and stored["outbox_seq"] == 6
    wait_until(lambda: db.coupon_templates.find_one({"_id": draft.template_id})["outbox_pending"] == 0,
               message="template events published")


def test_claims_repeat_by_key_stop_at_the_limit_and_at_the_total(stub, db):
    mid = new_merchant_id()
    template = active_template(stub, mid, total=2, per_member_limit=1)
    alice, bob, carol = member(stub, mid, "a"), member(stub, mid, "b"), member(stub, mid, "c")
    first = claim(stub, mid, alice, template.template_id, key="same-key")
    again = claim(stub, mid, alice, template.template_id, key="same-key")
    assert (again.coupon.coupon_id, again.repeated, first.repeated) == (first.coupon.coupon_id, True, False)
    assert first.coupon.state == pb.MEMBER_COUPON_STATE_AVAILABLE and first.coupon.source == pb.COUPON_SOURCE_CLAIM
    assert reason(rpc_error(claim, stub, mid, alice, template.template_id)) == "COUPON_LIMIT_REACHED"
    claim(stub, mid, bob, template.template_id)
    assert reason(rpc_error(claim, stub, mid, carol, template.template_id)) == "COUPON_SOLD_OUT"
    assert db.coupon_templates.find_one({"_id": template.template_id})["issued"] == 2
    assert db.member_coupons.count_documents({"merchant_id": mid}) == 2
    mine = stub.ListMyCoupons(pb.ListMyCouponsRequest(states=[pb.MEMBER_COUPON_STATE_AVAILABLE]),
                              metadata=as_member(mid, alice)).coupons
    assert [c.coupon_id for c in mine] == [first.coupon.coupon_id]
    assert not stub.ListMyCoupons(pb.ListMyCouponsRequest(states=[pb.MEMBER_COUPON_STATE_USED]),
                                  metadata=as_member(mid, alice)).coupons
    stored = db.member_coupons.find_one({"_id": first.coupon.coupon_id})
    assert stored["slot"] == 1 and stored["state"] == "AVAILABLE" and stored["outbox_seq"] == 1


def test_concurrent_claims_over_grpc_issue_exactly_the_total(stub, db):
    mid = new_merchant_id()
    template = active_template(stub, mid, total=10, per_member_limit=2)
    members = [member(stub, mid, f"r{i}") for i in range(15)]

    def attempt(member_id):
        try:
            return claim(stub, mid, member_id, template.template_id).coupon.coupon_id
        except grpc.RpcError as error:
            return reason(error)

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(attempt, members * 2))
    assert sum(o.startswith("cpn_") for o in outcomes) == 10
    assert set(o for o in outcomes if not o.startswith("cpn_")) <= {"COUPON_SOLD_OUT", "COUPON_LIMIT_REACHED"}
    assert db.coupon_templates.find_one({"_id": template.template_id})["issued"] == 10
    held = [c["member_id"] for c in db.member_coupons.find({"merchant_id": mid, "state": "AVAILABLE"})]
    assert len(held) == 10 and max(held.count(m) for m in set(held)) <= 2


def test_the_cart_read_shows_savings_and_reasons(stub, db):
    mid = new_merchant_id()
    alice = member(stub, mid)
    over_100 = active_template(stub, mid)
    products = active_template(stub, mid, name="Only other", rule=pb.CouponRule(
        kind=pb.COUPON_KIND_NO_THRESHOLD, amount_off=500, scope=pb.COUPON_SCOPE_PRODUCTS, product_ids=[PRD_OTHER]))
    for t in (over_100, products):
        claim(stub, mid, alice, t.template_id)
    below = stub.ListCouponsForCart(pb.ListCouponsForCartRequest(lines=[line(price=3_000, qty=1)]),
                                    metadata=as_member(mid, alice)).options
    assert {o.coupon.template_id: (o.usable, o.discount.reason, o.discount.shortfall) for o in below} == {
        over_100.template_id: (False, "COUPON_BELOW_THRESHOLD", 7_000),
        products.template_id: (False, "COUPON_OUT_OF_SCOPE", 0)}
    options = stub.ListCouponsForCart(pb.ListCouponsForCartRequest(
        lines=[line(price=6_000, qty=2), line(price=1_000, qty=1, product=PRD_OTHER)]),
        metadata=as_member(mid, alice)).options
    assert options[0].usable and options[0].coupon.template_id == over_100.template_id
    assert options[0].discount.amount == 1_000 and list(options[0].discount.shares) == [923, 77]
    assert options[1].usable and list(options[1].discount.shares) == [0, 500]


def order_round(stub, db) -> str:
    """An order quotes, locks, uses the coupon, and a refund restores it: the coupon id."""
    mid = new_merchant_id()
    alice = member(stub, mid)
    template = active_template(stub, mid)
    coupon = claim(stub, mid, alice, template.template_id).coupon
    best = stub.QuoteCoupon(pb.QuoteCouponRequest(member_id=alice, lines=[line()]), metadata=order_service(mid))
    assert best.applied and best.coupon.coupon_id == coupon.coupon_id and best.discount.amount == 1_000
    nothing = stub.QuoteCoupon(pb.QuoteCouponRequest(member_id=alice, lines=[line(price=100, qty=1)]),
                               metadata=order_service(mid))
    assert not nothing.applied
    order, other = new_id("ord"), new_id("ord")
    pay_by = timestamp(datetime.now(timezone.utc) + timedelta(minutes=30))
    lock = pb.LockCouponRequest(member_id=alice, coupon_id=coupon.coupon_id, order_id=order, lines=[line()],
                                pay_by=pay_by)
    locked = stub.LockCoupon(lock, metadata=order_service(mid))
    assert locked.coupon.state == pb.MEMBER_COUPON_STATE_LOCKED and locked.discount.amount == 1_000
    assert stub.LockCoupon(lock, metadata=order_service(mid)).coupon.order_id == order  # the same order again
    lock.order_id = other
    assert reason(rpc_error(stub.LockCoupon, lock, metadata=order_service(mid))) == "COUPON_IN_USE"
    used = stub.UseCoupon(pb.UseCouponRequest(coupon_id=coupon.coupon_id, order_id=order), metadata=order_service(mid))
    assert used.coupon.state == pb.MEMBER_COUPON_STATE_USED
    stats = stub.GetCouponTemplateStats(pb.GetCouponTemplateStatsRequest(template_id=template.template_id),
                                        metadata=as_role(mid, "FINANCE"))
    assert (stats.issued, stats.used, stats.discount_given, stats.gmv) == (1, 1, 1_000, 12_000)
    restored = stub.RestoreCoupon(pb.RestoreCouponRequest(coupon_id=coupon.coupon_id, order_id=order),
                                  metadata=order_service(mid))
    assert restored.coupon.state == pb.MEMBER_COUPON_STATE_AVAILABLE
    again = stub.RestoreCoupon(pb.RestoreCouponRequest(coupon_id=coupon.coupon_id, order_id=order),
                               metadata=order_service(mid))
    assert again.coupon.state == pb.MEMBER_COUPON_STATE_AVAILABLE
    return coupon.coupon_id


async def test_each_move_of_a_coupon_is_published_once(stack, stub, db):
    coupon_id = order_round(stub, db)
    nc = await nats.connect(stack.nats_url)
    found: dict[str, pb.MemberCoupon] = {}
    try:
        sub = await nc.jetstream().pull_subscribe("siyu.member.coupon.>", stream="SIYU_MEMBER")
        for _ in range(100):
            try:
                for msg in await sub.fetch(batch=500, timeout=0.5):
                    envelope = decode(msg.data)
                    if envelope.aggregate_id == coupon_id:
                        changed = events_pb2.MemberCouponChanged()
                        assert envelope.payload.Unpack(changed)
                        assert envelope.type not in found
                        found[envelope.type] = changed.coupon
                    await msg.ack()
            except nats.errors.TimeoutError:
                pass
            if len(found) == 4:
                break
    finally:
        await nc.close()
    assert sorted(t.rsplit(".", 1)[1] for t in found) == ["claimed", "locked", "restored", "used"]
    assert found["siyu.member.coupon.used"].state == pb.MEMBER_COUPON_STATE_USED
    assert found["siyu.member.coupon.locked"].discount == 1_000


def test_an_order_quotes_locks_uses_and_a_refund_restores(stub, db):
    order_round(stub, db)


def test_with_the_switch_off_a_refund_keeps_the_coupon_used(stub, db):
    mid = new_merchant_id()
    alice = member(stub, mid)
    stub.UpdateCouponSettings(pb.UpdateCouponSettingsRequest(settings=pb.CouponSettings(return_on_refund=False)),
                              metadata=operator(mid))
    assert not stub.GetCouponSettings(pb.GetCouponSettingsRequest(), metadata=operator(mid)).settings.return_on_refund
    coupon = claim(stub, mid, alice, active_template(stub, mid).template_id).coupon
    order = new_id("ord")
    stub.LockCoupon(pb.LockCouponRequest(member_id=alice, coupon_id=coupon.coupon_id, order_id=order, lines=[line()],
                                         pay_by=timestamp(datetime.now(timezone.utc) + timedelta(minutes=30))),
                    metadata=order_service(mid))
    stub.UseCoupon(pb.UseCouponRequest(coupon_id=coupon.coupon_id, order_id=order), metadata=order_service(mid))
    kept = stub.RestoreCoupon(pb.RestoreCouponRequest(coupon_id=coupon.coupon_id, order_id=order),
                              metadata=order_service(mid))
    assert kept.coupon.state == pb.MEMBER_COUPON_STATE_USED


def test_a_grant_job_runs_in_the_background_and_reports_progress(stub, db):
    mid = new_merchant_id()
    template = active_template(stub, mid, staff_only=True)
    alice, bob = member(stub, mid, "a"), member(stub, mid, "b")
    request = pb.StartCouponGrantRequest(template_id=template.template_id, member_ids=[alice, bob, new_id("mem")],
                                         idempotency_key="grant-1")
    job = stub.StartCouponGrant(request, metadata=operator(mid)).grant
    assert job.members == 3 and job.grant_id.startswith("cgj_")
    assert stub.StartCouponGrant(request, metadata=operator(mid)).grant.grant_id == job.grant_id
    done = wait_until(lambda: (g := stub.GetCouponGrant(pb.GetCouponGrantRequest(grant_id=job.grant_id),
                                                        metadata=operator(mid)).grant).state == "DONE" and g,
                      message="grant done")
    assert done.granted == 2 and dict(done.skipped) == {"NOT_FOUND": 1}
    sources = {c["member_id"]: c["source"] for c in db.member_coupons.find({"merchant_id": mid})}
    assert sources == {alice: "GRANT", bob: "GRANT"}
    # A staff-only template is not claimable by members.
    assert reason(rpc_error(claim, stub, mid, member(stub, mid, "c"), template.template_id)) == \
        "COUPON_NOT_CLAIMABLE"
    request.member_ids.append(new_id("mem"))
    assert reason(rpc_error(stub.StartCouponGrant, request, metadata=operator(mid))) == "COUPON_GRANT_KEY_REUSED"


def test_a_new_member_gets_the_merchants_new_member_gift_once(stub, db):
    mid = new_merchant_id()
    template = active_template(stub, mid, staff_only=True)
    stub.UpdateCouponSettings(pb.UpdateCouponSettingsRequest(settings=pb.CouponSettings(
        return_on_refund=True, new_member_template_id=template.template_id)), metadata=operator(mid))
    newcomer = member(stub, mid, "new")
    gift = wait_until(lambda: db.member_coupons.find_one({"merchant_id": mid, "member_id": newcomer,
                                                          "state": "AVAILABLE"}), message="new-member gift")
    assert gift["source"] == "NEW_MEMBER" and gift["template_id"] == template.template_id
    assert db.member_coupons.count_documents({"merchant_id": mid, "member_id": newcomer}) == 1


def test_bad_input_is_refused_with_field_violations_and_writes_nothing(stub, db):
    mid = new_merchant_id()
    bad = rpc_error(stub.CreateCouponTemplate, creation(**amount_off(
        rule=pb.CouponRule(kind=pb.COUPON_KIND_AMOUNT_OFF, threshold=0, amount_off=1_000, scope=pb.COUPON_SCOPE_ALL),
        validity=pb.CouponValidity(days=0))), metadata=operator(mid))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"rule.threshold", "validity.days"} <= set(field_violations(bad))
    by_rules = rpc_error(stub.CreateCouponTemplate, creation(**amount_off(
        name="", total=-1)), metadata=operator(mid))
    assert {"name", "total"} <= set(field_violations(by_rules))
    assert db.coupon_templates.count_documents({"merchant_id": mid}) == 0
    alice = member(stub, mid)
    no_lines = rpc_error(stub.ListCouponsForCart, pb.ListCouponsForCartRequest(), metadata=as_member(mid, alice))
    assert "lines" in field_violations(no_lines)
    no_key = rpc_error(stub.ClaimCoupon, pb.ClaimCouponRequest(template_id=new_id("cpt")),
                       metadata=as_member(mid, alice))
    assert "idempotency_key" in field_violations(no_key)
    unknown_gift = rpc_error(stub.UpdateCouponSettings, pb.UpdateCouponSettingsRequest(
        settings=pb.CouponSettings(new_member_template_id=new_id("cpt"))), metadata=operator(mid))
    assert "settings.new_member_template_id" in field_violations(unknown_gift)
    assert db.coupon_settings.count_documents({"merchant_id": mid}) == 0


def test_another_merchant_finds_nothing_and_wrong_roles_are_denied(stub, db):
    mid, other = new_merchant_id(), new_merchant_id()
    template = active_template(stub, mid)
    alice = member(stub, mid)
    coupon = claim(stub, mid, alice, template.template_id).coupon
    intruder = member(stub, other)
    for call, request, meta in (
            (stub.GetCouponTemplate, pb.GetCouponTemplateRequest(template_id=template.template_id), operator(other)),
            (stub.SetCouponTemplateState, pb.SetCouponTemplateStateRequest(
                template_id=template.template_id, state=pb.COUPON_TEMPLATE_STATE_PAUSED), operator(other)),
            (stub.ClaimCoupon, pb.ClaimCouponRequest(template_id=template.template_id, idempotency_key="k1"),
             as_member(other, intruder)),
            (stub.UseCoupon, pb.UseCouponRequest(coupon_id=coupon.coupon_id, order_id=new_id("ord")),
             order_service(other))):
        assert rpc_error(call, request, metadata=meta).code() == grpc.StatusCode.NOT_FOUND
    assert not stub.ListMyCoupons(pb.ListMyCouponsRequest(), metadata=as_member(other, intruder)).coupons
    assert db.coupon_templates.find_one({"_id": template.template_id})["state"] == "ACTIVE"
    for role in ("GUIDE", "FINANCE"):
        denied = rpc_error(stub.CreateCouponTemplate, creation(),
                           metadata=as_role(mid, role))
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    guide = rpc_error(stub.GetCouponTemplateStats, pb.GetCouponTemplateStatsRequest(
        template_id=template.template_id), metadata=as_role(mid, "GUIDE"))
    assert guide.code() == grpc.StatusCode.PERMISSION_DENIED
    staff_claims = rpc_error(stub.ClaimCoupon, pb.ClaimCouponRequest(template_id=template.template_id,
                                                                     idempotency_key="k2"), metadata=operator(mid))
    assert staff_claims.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def test_an_unpaid_orders_release_gives_the_coupon_back_once(stub, db):
    mid = new_merchant_id()
    alice = member(stub, mid)
    coupon = claim(stub, mid, alice, active_template(stub, mid).template_id).coupon
    order = new_id("ord")
    stub.LockCoupon(pb.LockCouponRequest(member_id=alice, coupon_id=coupon.coupon_id, order_id=order, lines=[line()],
                                         pay_by=timestamp(datetime.now(timezone.utc) + timedelta(minutes=30))),
                    metadata=order_service(mid))
    for _ in range(2):
        released = stub.ReleaseCoupon(pb.ReleaseCouponRequest(coupon_id=coupon.coupon_id, order_id=order),
                                      metadata=order_service(mid)).coupon
        assert released.state == pb.MEMBER_COUPON_STATE_AVAILABLE
    assert db.member_coupons.find_one({"_id": coupon.coupon_id})["version"] == 4  # claim, confirm, lock, release
    # The released order cannot take it again; another order can.
    again = pb.LockCouponRequest(member_id=alice, coupon_id=coupon.coupon_id, order_id=order, lines=[line()],
                                 pay_by=timestamp(datetime.now(timezone.utc) + timedelta(minutes=30)))
    assert reason(rpc_error(stub.LockCoupon, again, metadata=order_service(mid))) == "COUPON_LOCK_ENDED"
    again.order_id = new_id("ord")
    assert stub.LockCoupon(again, metadata=order_service(mid)).coupon.state == pb.MEMBER_COUPON_STATE_LOCKED


def test_the_services_jobs_expire_coupons_and_undo_claims_left_half_way(stub, db):
    """What a crash leaves and what time ends, planted in the database: the expiry job and
    the claim recovery of the running service clean up (every 0.3 s in tests)."""
    mid = new_merchant_id()
    alice = member(stub, mid)
    template = active_template(stub, mid, per_member_limit=2)
    coupon = claim(stub, mid, alice, template.template_id).coupon
    past_ms = int((datetime.now(timezone.utc) - timedelta(minutes=5)).timestamp() * 1000)
    db.member_coupons.update_one({"_id": coupon.coupon_id}, {"$set": {"valid_until_ms": past_ms}})
    stale = new_id("cpn")
    stored = db.member_coupons.find_one({"_id": coupon.coupon_id}, {"outbox": 0})
    db.member_coupons.insert_one({**stored, "_id": stale, "slot": 2, "claim_key": "crashed", "state": "CLAIMING",
                                  "claimed_ms": past_ms, "version": 1, "outbox_pending": 0})
    wait_until(lambda: db.member_coupons.find_one({"_id": coupon.coupon_id})["state"] == "EXPIRED"
               and db.member_coupons.find_one({"_id": stale}) is None, timeout=30, message="jobs ran")
    mine = stub.ListMyCoupons(pb.ListMyCouponsRequest(states=[pb.MEMBER_COUPON_STATE_EXPIRED]),
                              metadata=as_member(mid, alice)).coupons
    assert [c.coupon_id for c in mine] == [coupon.coupon_id]
    # The freed slot takes a new claim.
    assert claim(stub, mid, alice, template.template_id).coupon.state == pb.MEMBER_COUPON_STATE_AVAILABLE


def test_a_creation_key_answers_the_same_template_and_refuses_another_design(stub, db):
    mid = new_merchant_id()
    first = stub.CreateCouponTemplate(creation(idempotency_key="spring-1"), metadata=operator(mid)).template
    again = stub.CreateCouponTemplate(creation(idempotency_key="spring-1"), metadata=operator(mid)).template
    assert again.template_id == first.template_id
    reused = rpc_error(stub.CreateCouponTemplate, creation(idempotency_key="spring-1", total=7),
                       metadata=operator(mid))
    assert (reused.code(), reason(reused)) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    no_key = rpc_error(stub.CreateCouponTemplate, creation(idempotency_key=""), metadata=operator(mid))
    assert "idempotency_key" in field_violations(no_key)
    assert db.coupon_templates.count_documents({"merchant_id": mid}) == 1
    # Created once: one audit entry, read as the owner reads the trail.
    trail = stub.ListAuditEntries(pb.ListAuditEntriesRequest(action="COUPON_TEMPLATE_CREATED"),
                                  metadata=as_role(mid, "OWNER")).entries
    assert [(e.target_id, e.after["name"]) for e in trail] == [(first.template_id, first.name)]


def test_the_coupon_centre_lists_what_the_member_may_still_claim(stub, db):
    mid = new_merchant_id()
    alice, bob = member(stub, mid), member(stub, mid)
    scarce = active_template(stub, mid, total=2, per_member_limit=1)
    open_ = active_template(stub, mid, total=0, per_member_limit=2)
    stub.CreateCouponTemplate(creation(), metadata=operator(mid))  # a draft: not shown
    claim(stub, mid, alice, scarce.template_id)
    claim(stub, mid, alice, open_.template_id)
    page = stub.ListClaimableCoupons(pb.ListClaimableCouponsRequest(page_size=1), metadata=as_member(mid, alice))
    rest = stub.ListClaimableCoupons(pb.ListClaimableCouponsRequest(page_size=1, page_token=page.next_page_token),
                                     metadata=as_member(mid, alice))
    shown = {c.template_id: c for c in [*page.coupons, *rest.coupons]}
    assert [c.template_id for c in page.coupons] == [open_.template_id] and not rest.next_page_token
    assert (shown[open_.template_id].unlimited, shown[open_.template_id].member_left) == (True, 1)
    assert (shown[scarce.template_id].left, shown[scarce.template_id].member_left) == (1, 0)
    claim(stub, mid, bob, scarce.template_id)  # the last one: sold out, no longer shown
    bobs = stub.ListClaimableCoupons(pb.ListClaimableCouponsRequest(), metadata=as_member(mid, bob)).coupons
    assert [c.template_id for c in bobs] == [open_.template_id]
    other = new_merchant_id()
    assert not stub.ListClaimableCoupons(pb.ListClaimableCouponsRequest(),
                                         metadata=as_member(other, member(stub, other))).coupons
    staff = rpc_error(stub.ListClaimableCoupons, pb.ListClaimableCouponsRequest(), metadata=operator(mid))
    assert staff.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def test_a_payment_after_the_lock_sweep_still_uses_the_coupon_with_the_orders_amount(stub, db):
    """The lock's deadline and grace are planted in the past; the running service's sweep
    frees the coupon, and the order paid late after all still uses it."""
    mid = new_merchant_id()
    alice = member(stub, mid)
    template = active_template(stub, mid)
    coupon = claim(stub, mid, alice, template.template_id).coupon
    order = new_id("ord")
    stub.LockCoupon(pb.LockCouponRequest(member_id=alice, coupon_id=coupon.coupon_id, order_id=order, lines=[line()],
                                         pay_by=timestamp(datetime.now(timezone.utc) + timedelta(minutes=30))),
                    metadata=order_service(mid))
    past_ms = int((datetime.now(timezone.utc) - timedelta(seconds=1)).timestamp() * 1000)
    db.member_coupons.update_one({"_id": coupon.coupon_id}, {"$set": {"locked_until_ms": past_ms}})
    wait_until(lambda: db.member_coupons.find_one({"_id": coupon.coupon_id})["state"] == "AVAILABLE",
               timeout=30, message="the sweep released the lock")
    assert db.member_coupons.find_one({"_id": coupon.coupon_id})["swept_order_id"] == order
    used = stub.UseCoupon(pb.UseCouponRequest(coupon_id=coupon.coupon_id, order_id=order, order_amount=11_000),
                          metadata=order_service(mid)).coupon
    assert (used.state, used.order_id) == (pb.MEMBER_COUPON_STATE_USED, order)
    stats = stub.GetCouponTemplateStats(pb.GetCouponTemplateStatsRequest(template_id=template.template_id),
                                        metadata=as_role(mid, "FINANCE"))
    assert (stats.used, stats.locked, stats.discount_given, stats.gmv) == (1, 0, 1_000, 11_000)
    # Another order can neither take it nor use it now.
    other = rpc_error(stub.UseCoupon, pb.UseCouponRequest(coupon_id=coupon.coupon_id, order_id=new_id("ord")),
                      metadata=order_service(mid))
    assert reason(other) == "COUPON_IN_USE"


def test_a_release_that_overtakes_its_lock_refuses_the_lock(stub, db):
    mid = new_merchant_id()
    alice = member(stub, mid)
    coupon = claim(stub, mid, alice, active_template(stub, mid).template_id).coupon
    order = new_id("ord")
    released = stub.ReleaseCoupon(pb.ReleaseCouponRequest(coupon_id=coupon.coupon_id, order_id=order),
                                  metadata=order_service(mid)).coupon
    assert released.state == pb.MEMBER_COUPON_STATE_AVAILABLE
    late = pb.LockCouponRequest(member_id=alice, coupon_id=coupon.coupon_id, order_id=order, lines=[line()],
                                pay_by=timestamp(datetime.now(timezone.utc) + timedelta(minutes=30)))
    refused = rpc_error(stub.LockCoupon, late, metadata=order_service(mid))
    assert (refused.code(), reason(refused)) == (grpc.StatusCode.FAILED_PRECONDITION, "COUPON_LOCK_ENDED")
    assert db.member_coupons.find_one({"_id": coupon.coupon_id})["state"] == "AVAILABLE"
