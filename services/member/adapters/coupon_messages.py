"""Protobuf views of coupon templates, member coupons and grant jobs, the requests that
carry them in, and the coupon events built from the domain events the aggregates record."""
from __future__ import annotations

from datetime import datetime, timezone

from siyu.member.v1 import events_pb2, member_pb2

from siyu_kit.events.outbox import Event, event_for
from siyu_kit.protos import timestamp

from services.member.domain import coupons as rules
from services.member.domain.coupons import (CouponConfig, CouponKind, CouponLine, CouponRule,
                                            CouponTemplate, Discount, GrantJob, MemberCoupon, Scope, TemplateDraft,
                                            TemplateState, Validity)

_KIND = {k: member_pb2.CouponKind.Value(f"COUPON_KIND_{k.value}") for k in CouponKind}
_KIND_BACK = {v: k for k, v in _KIND.items()}
_SCOPE = {s: member_pb2.CouponScope.Value(f"COUPON_SCOPE_{s.value}") for s in Scope}
_SCOPE_BACK = {v: k for k, v in _SCOPE.items()}
_ORDER_KIND = {k: member_pb2.CouponOrderKind.Value(f"COUPON_ORDER_KIND_{k}") for k in rules.ORDER_KINDS}
_ORDER_KIND_BACK = {v: k for k, v in _ORDER_KIND.items()}
_TEMPLATE_STATE = {s: member_pb2.CouponTemplateState.Value(f"COUPON_TEMPLATE_STATE_{s.value}") for s in TemplateState}
TEMPLATE_STATE_BACK = {v: k for k, v in _TEMPLATE_STATE.items()}
_COUPON_STATE = {s: member_pb2.MemberCouponState.Value(f"MEMBER_COUPON_STATE_{s.value}") for s in rules.VISIBLE}
COUPON_STATE_BACK = {v: k for k, v in _COUPON_STATE.items()}
_SOURCE = {s: member_pb2.CouponSource.Value(f"COUPON_SOURCE_{s}") for s in rules.SOURCES}


# ---- requests in ------------------------------------------------------------------------------

def _time(message, name: str) -> datetime | None:
    return getattr(message, name).ToDatetime(tzinfo=timezone.utc) if message.HasField(name) else None


def rule_of(message: member_pb2.CouponRule) -> CouponRule:
    # An unknown or unspecified enum is left to the field rules (required) or the domain's
    # checks; UNSPECIFIED kinds fall back so the domain names the fields that do not fit.
    return CouponRule(
        kind=_KIND_BACK.get(message.kind, CouponKind.AMOUNT_OFF), threshold=message.threshold,
        amount_off=message.amount_off, percent_off_bp=message.percent_off_bp, cap=message.cap,
        scope=_SCOPE_BACK.get(message.scope, Scope.ALL), category_ids=tuple(message.category_ids),
        product_ids=tuple(message.product_ids), excluded_product_ids=tuple(message.excluded_product_ids),
        order_kinds=tuple(_ORDER_KIND_BACK.get(k, "UNSPECIFIED") for k in message.order_kinds) or (rules.NORMAL,))


def draft_of(request) -> TemplateDraft:
    """A Create- or UpdateCouponTemplateRequest as the design it carries."""
    validity = Validity(starts_at=_time(request.validity, "starts_at"), ends_at=_time(request.validity, "ends_at"),
                        days=request.validity.days)
    return TemplateDraft(name=request.name, rule=rule_of(request.rule), validity=validity,
                         total=request.total or None, per_member_limit=request.per_member_limit or 1,
                         self_claim=not request.staff_only, marketing=request.marketing)


def lines_of(lines) -> list[CouponLine]:
    return [CouponLine(sku_id=line.sku_id, product_id=line.product_id, category_path=tuple(line.category_path),
                       unit_price=line.unit_price, quantity=line.quantity,
                       amount=line.amount if line.HasField("amount") else None) for line in lines]


def order_kind_of(value: int) -> str:
    return rules.NORMAL if not value else _ORDER_KIND_BACK.get(value, "UNSPECIFIED")


def config_of(message: member_pb2.CouponSettings) -> CouponConfig:
    return CouponConfig(return_on_refund=message.return_on_refund,
                        new_member_template_id=message.new_member_template_id)


# ---- views out -------------------------------------------------------------------------------

def rule_proto(rule: CouponRule) -> member_pb2.CouponRule:
    return member_pb2.CouponRule(
        kind=_KIND[rule.kind], threshold=rule.threshold, amount_off=rule.amount_off,
        percent_off_bp=rule.percent_off_bp, cap=rule.cap, scope=_SCOPE[rule.scope],
        category_ids=rule.category_ids, product_ids=rule.product_ids,
        excluded_product_ids=rule.excluded_product_ids, order_kinds=[_ORDER_KIND[k] for k in rule.order_kinds])


def template_proto(t: CouponTemplate) -> member_pb2.CouponTemplate:
    return member_pb2.CouponTemplate(
        template_id=t.id, name=t.name, rule=rule_proto(t.rule),
        validity=member_pb2.CouponValidity(starts_at=timestamp(t.validity.starts_at),
                                           ends_at=timestamp(t.validity.ends_at), days=t.validity.days),
        total=t.total or 0, per_member_limit=t.per_member_limit, staff_only=not t.self_claim, marketing=t.marketing,
        state=_TEMPLATE_STATE[t.state], issued=t.issued, created_at=timestamp(t.created_at),
        updated_at=timestamp(t.updated_at))


def coupon_proto(c: MemberCoupon) -> member_pb2.MemberCoupon:
    return member_pb2.MemberCoupon(
        coupon_id=c.id, template_id=c.template_id, name=c.name, rule=rule_proto(c.rule),
        valid_from=timestamp(c.valid_from), valid_until=timestamp(c.valid_until),
        state=_COUPON_STATE.get(c.state, member_pb2.MEMBER_COUPON_STATE_UNSPECIFIED),
        source=_SOURCE.get(c.source, member_pb2.COUPON_SOURCE_UNSPECIFIED), order_id=c.order_id,
        discount=c.discount, claimed_at=timestamp(c.claimed_at), member_id=c.member_id)


def claimable_proto(c) -> member_pb2.ClaimableCoupon:
    """A services.member.application.coupons.Claimable as the coupon centre shows it."""
    t = c.template
    return member_pb2.ClaimableCoupon(
        template_id=t.id, name=t.name, rule=rule_proto(t.rule),
        validity=member_pb2.CouponValidity(starts_at=timestamp(t.validity.starts_at),
                                           ends_at=timestamp(t.validity.ends_at), days=t.validity.days),
        unlimited=c.left is None, left=c.left or 0, per_member_limit=t.per_member_limit, member_left=c.member_left)


def discount_proto(d: Discount) -> member_pb2.CouponDiscount:
    return member_pb2.CouponDiscount(amount=d.amount, shares=list(d.shares), eligible_amount=d.eligible_subtotal,
                                     reason=d.reason, shortfall=d.shortfall)


def grant_proto(job: GrantJob) -> member_pb2.CouponGrant:
    return member_pb2.CouponGrant(
        grant_id=job.id, template_id=job.template_id, state=job.state.value, members=len(job.member_ids),
        granted=job.granted, skipped=dict(job.skipped), created_at=timestamp(job.created_at),
        updated_at=timestamp(job.updated_at))


def config_proto(config: CouponConfig) -> member_pb2.CouponSettings:
    return member_pb2.CouponSettings(return_on_refund=config.return_on_refund,
                                     new_member_template_id=config.new_member_template_id)


# ---- events ------------------------------------------------------------------------------------

def _verb(subject: str) -> str:
    return subject.rsplit(".", 1)[-1]


def template_events(template: CouponTemplate, recorded: list, version: int) -> list[Event]:
    """The template's recorded moves, each with the template as saved (at `version`)."""
    view = template_proto(template)
    return [event_for(events_pb2.CouponTemplateChanged(template=view), merchant_id=template.merchant_id,
                      aggregate_id=template.id, aggregate_version=version, verb=_verb(e.subject),
                      occurred_at=e.at) for e in recorded]


def coupon_events(coupon: MemberCoupon, recorded: list, version: int) -> list[Event]:
    view = coupon_proto(coupon)
    return [event_for(events_pb2.MemberCouponChanged(coupon=view), merchant_id=coupon.merchant_id,
                      aggregate_id=coupon.id, aggregate_version=version, verb=_verb(e.subject), occurred_at=e.at)
            for e in recorded]


def grant_events(job: GrantJob, recorded: list, version: int) -> list[Event]:
    view = grant_proto(job)
    return [event_for(events_pb2.CouponGrantProgressed(grant=view, granted=e.granted, skipped=e.skipped,
                                                       done=e.done),
                      merchant_id=job.merchant_id, aggregate_id=job.id, aggregate_version=version,
                      occurred_at=e.at) for e in recorded]

