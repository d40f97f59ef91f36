"""The points-mall part of the member service's wiring: coupon items and redemptions over
MongoDB, spending through the points economy and issuing through the coupons, and the job
that finishes redemptions a crash left in the middle (safe on every replica: each
redemption is leased by one conditional update and every step applies once)."""
from __future__ import annotations

from services.member.adapters import points_mall_store
from services.member.application.coupons import CouponUseCases
from services.member.application.points import PointsMoves
from services.member.application.points_mall import PointsMallCoupons
from siyu_kit import service
from siyu_kit.config import env_seconds


def use_cases(points: PointsMoves, coupons: CouponUseCases) -> PointsMallCoupons:
    points_mall_store.ensure_indexes()
    return PointsMallCoupons(points_mall_store.MongoCouponItems(), points_mall_store.MongoMemberCounters(),
                             points_mall_store.MongoRedemptions(), points, coupons)


def attach(servicer, points_mall: PointsMallCoupons):
    """Gives the MemberServicer's PointsMallRpcs their use cases; returns the servicer."""
    servicer.points_mall = points_mall
    return servicer


def jobs(points_mall: PointsMallCoupons) -> list[service.Job]:
    return [service.Job("member-points-mall-finish", env_seconds("MEMBER_POINTS_MALL_FINISH_INTERVAL_S", 10),
                        points_mall.finish_unfinished)]
