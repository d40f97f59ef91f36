"""The funnel and repeat-purchase RPCs of ContentService: proto in, use case, proto out."""
from __future__ import annotations

from siyu.content.v1 import content_pb2

from siyu_kit import protos

from services.content.application.cohorts import CohortUseCases
from services.content.application.funnels import FunnelUseCases
from services.content.domain import cohorts, funnels
from services.content.domain.cohorts import Group
from services.content.domain.funnels import Counters

DIMENSION_BY_NUMBER = {content_pb2.FUNNEL_DIMENSION_PERSONA: funnels.PERSONA,
                       content_pb2.FUNNEL_DIMENSION_CONTENT: funnels.CONTENT,
                       content_pb2.FUNNEL_DIMENSION_LIVE_SESSION: funnels.LIVE_SESSION,
                       content_pb2.FUNNEL_DIMENSION_CHANNEL: funnels.CHANNEL,
                       content_pb2.FUNNEL_DIMENSION_SHARE_CODE: funnels.SHARE_CODE,
                       content_pb2.FUNNEL_DIMENSION_GUIDE: funnels.GUIDE}
GROUPING_BY_NUMBER = {content_pb2.COHORT_GROUPING_UNSPECIFIED: cohorts.ALL,
                      content_pb2.COHORT_GROUPING_CHANNEL: cohorts.BY_CHANNEL,
                      content_pb2.COHORT_GROUPING_PERSONA: cohorts.BY_PERSONA}


def funnel_pb(counters: Counters, currency: str) -> content_pb2.Funnel:
    return content_pb2.Funnel(unique_viewers=counters.unique_viewers, product_clicks=counters.product_clicks,
                              orders=counters.orders, paid_orders=counters.paid_orders,
                              gmv=protos.money(counters.gmv, currency),
                              conversion_rate_bp=counters.conversion_rate_bp, refunds=counters.refunds,
                              refunded=protos.money(counters.refunded, currency),
                              group_joins=counters.group_joins, bargain_starts=counters.bargain_starts,
                              bargain_helps=counters.bargain_helps)


def group_pb(group: Group, currency: str) -> content_pb2.CohortGroup:
    return content_pb2.CohortGroup(
        key=group.key, members=group.members, repeat_members=group.repeat_members,
        repeat_rate_bp=group.repeat_rate_bp, lifetime_value=protos.money(group.lifetime_value, currency),
        cohorts=[content_pb2.Cohort(month=c.month, members=c.members, retention_bp=c.retention_bp,
                                    repeat_members=c.repeat_members,
                                    lifetime_value=protos.money(c.lifetime_value, currency))
                 for c in group.cohorts])


class FunnelRpcs:
    funnels: FunnelUseCases
    cohorts: CohortUseCases

    async def GetFunnelReport(self, request, context):
        report, currency = await self.funnels.daily_report(
            DIMENSION_BY_NUMBER.get(request.dimension, ""), request.ref_id, request.from_day, request.to_day)
        return content_pb2.GetFunnelReportResponse(
            dimension=request.dimension, ref_id=request.ref_id, time_zone=self.funnels.time_zone,
            days=[content_pb2.FunnelDay(day=day, funnel=funnel_pb(c, currency)) for day, c in report.rows],
            total=funnel_pb(report.total, currency))

    async def GetRepeatPurchaseReport(self, request, context):
        groups, through, currency = await self.cohorts.report(
            request.from_month, request.to_month, GROUPING_BY_NUMBER.get(request.group_by, ""))
        return content_pb2.GetRepeatPurchaseReportResponse(
            groups=[group_pb(g, currency) for g in groups], through_month=through, time_zone=self.cohorts.time_zone)
