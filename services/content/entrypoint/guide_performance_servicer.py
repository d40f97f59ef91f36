"""The guide performance RPCs of ContentService: proto in, use case, proto out."""
from __future__ import annotations

from siyu.content.v1 import content_pb2

from services.content.application.guide_performance import GuidePerformanceUseCases
from services.content.entrypoint.funnel_servicer import funnel_pb


def _days(report, currency: str) -> list[content_pb2.FunnelDay]:
    return [content_pb2.FunnelDay(day=day, funnel=funnel_pb(c, currency)) for day, c in report.rows]


class GuidePerformanceRpcs:
    guide_performance: GuidePerformanceUseCases | None = None

    async def GetMyGuidePerformance(self, request, context):
        guide_id, report, currency = await self.guide_performance.my_performance(request.from_day, request.to_day)
        return content_pb2.GetMyGuidePerformanceResponse(guide_id=guide_id, days=_days(report, currency),
                                                         total=funnel_pb(report.total, currency),
                                                         time_zone=self.guide_performance.time_zone)

    async def ListGuidePerformance(self, request, context):
        rows, token, currency = await self.guide_performance.list_guides(
            request.from_day, request.to_day, request.store, request.page_size, request.page_token)
        return content_pb2.ListGuidePerformanceResponse(
            guides=[content_pb2.GuidePerformance(guide_id=g, total=funnel_pb(c, currency)) for g, c in rows],
            next_page_token=token, time_zone=self.guide_performance.time_zone)

    async def GetStorePerformance(self, request, context):
        report, currency = await self.guide_performance.store_performance(request.store, request.from_day,
                                                                          request.to_day)
        return content_pb2.GetStorePerformanceResponse(store=request.store, days=_days(report, currency),
                                                       total=funnel_pb(report.total, currency),
                                                       time_zone=self.guide_performance.time_zone)

    async def ListStorePerformance(self, request, context):
        rows, token, currency = await self.guide_performance.list_stores(
            request.from_day, request.to_day, request.page_size, request.page_token)
        return content_pb2.ListStorePerformanceResponse(
            stores=[content_pb2.StorePerformance(store=s, total=funnel_pb(c, currency)) for s, c in rows],
            next_page_token=token, time_zone=self.guide_performance.time_zone)
