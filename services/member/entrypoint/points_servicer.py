"""The points RPCs of MemberService: proto in, use case, proto out."""
from __future__ import annotations

from siyu.member.v1 import member_pb2

from services.member.adapters.messages import entry_proto
from services.member.application.points import PointsEconomy, PointsSummary
from services.member.domain.points_settings import PointsSettings
from siyu_kit.protos import timestamp


def account_proto(summary: PointsSummary) -> member_pb2.PointsAccount:
    return member_pb2.PointsAccount(
        member_id=summary.member_id, balance=summary.balance, available=summary.available, frozen=summary.frozen,
        held=summary.held, owed=summary.owed, expiring=expiring_protos(summary))


def expiring_protos(summary: PointsSummary) -> list[member_pb2.PointsExpiring]:
    return [member_pb2.PointsExpiring(points=e.points, expires_at=timestamp(e.expires_at) if e.expires_at else None)
            for e in summary.expiring]


def settings_proto(s: PointsSettings, after_sales_days: int) -> member_pb2.PointsSettings:
    return member_pb2.PointsSettings(points_per_yuan=s.points_per_yuan, min_points=s.min_points,
                                     max_share_bp=s.max_share_bp, step=s.step, expiry_years=s.expiry_years,
                                     after_sales_days=after_sales_days)


def settings_of(message: member_pb2.PointsSettings) -> tuple[PointsSettings, int]:
    return (PointsSettings(points_per_yuan=message.points_per_yuan, min_points=message.min_points,
                           max_share_bp=message.max_share_bp, step=message.step, expiry_years=message.expiry_years),
            message.after_sales_days)


class PointsRpcs:
    economy: PointsEconomy

    async def ListMyPointsHistory(self, request, context):
        entries, token = await self.economy.my_history(request.page_size, request.page_token)
        return member_pb2.ListMyPointsHistoryResponse(entries=[entry_proto(e) for e in entries], next_page_token=token)

    async def GetMemberPoints(self, request, context):
        summary, problems, count = await self.economy.member_points(request.member_id)
        return member_pb2.GetMemberPointsResponse(
            account=account_proto(summary),
            audit=member_pb2.PointsAudit(consistent=not problems, problems=problems, entries=count))

    async def ListMemberPointsHistory(self, request, context):
        entries, token = await self.economy.member_history(request.member_id, request.page_size, request.page_token)
        return member_pb2.ListMemberPointsHistoryResponse(entries=[entry_proto(e) for e in entries],
                                                          next_page_token=token)

    async def AdjustPoints(self, request, context):
        entry, applied, summary = await self.economy.adjust(request.member_id, request.points, request.reason,
                                                            request.idempotency_key)
        return member_pb2.AdjustPointsResponse(entry=entry_proto(entry) if entry else None,
                                               account=account_proto(summary), applied=applied)

    async def GetPointsSettings(self, request, context):
        settings, days, version = await self.economy.settings()
        return member_pb2.GetPointsSettingsResponse(settings=settings_proto(settings, days), version=version)

    async def UpdatePointsSettings(self, request, context):
        settings, days = settings_of(request.settings)
        settings, days, version = await self.economy.update_settings(settings, days, request.expected_version)
        return member_pb2.UpdatePointsSettingsResponse(settings=settings_proto(settings, days), version=version)

    async def GetPointsTerms(self, request, context):
        terms = await self.economy.points_terms(request.member_id, request.payable)
        return member_pb2.GetPointsTermsResponse(settings=settings_proto(terms.settings, 0),
                                                 available=terms.available, max_usable=terms.max_usable,
                                                 max_discount=terms.max_discount)

    async def HoldPoints(self, request, context):
        held, discount, applied = await self.economy.hold(request.member_id, request.order_id, request.points,
                                                          request.payable, request.as_price)
        return member_pb2.HoldPointsResponse(held=held, discount=discount, applied=applied)

    async def SpendHeldPoints(self, request, context):
        spent, applied = await self.economy.spend(request.member_id, request.order_id)
        return member_pb2.SpendHeldPointsResponse(spent=spent, applied=applied)

    async def ReleaseHeldPoints(self, request, context):
        released, applied = await self.economy.release(request.member_id, request.order_id)
        return member_pb2.ReleaseHeldPointsResponse(released=released, applied=applied)

    async def ReversePointsForRefund(self, request, context):
        entry, applied = await self.economy.reverse(request.member_id, request.order_id, request.refund_id,
                                                    request.earned_points_to_take_back,
                                                    request.spent_points_to_return, request.refunded_amount,
                                                    request.paid_amount)
        return member_pb2.ReversePointsForRefundResponse(entry=entry_proto(entry) if entry else None, applied=applied)
