"""The distribution and exclusive-guide RPCs of MemberService: proto in, use case, proto out."""
from __future__ import annotations

from siyu.member.v1 import member_pb2

from services.member.adapters.distribution_messages import (TEAM_KIND, distributor_proto, level_proto,
                                                            referral_proto, settings_of, settings_proto, state_of,
                                                            team_kind_of)
from services.member.application.distribution import Distribution
from siyu_kit.errors import Violations
from siyu_kit.protos import timestamp


def _state_filter(number: int) -> str:
    state = state_of(number)
    if number and not state:
        v = Violations()
        v.add("state", "a distributor state")
        v.raise_if_any()
    return state


class DistributionRpcs:
    distribution: Distribution

    async def GetDistributionSettings(self, request, context):
        settings, version = await self.distribution.get_settings()
        return member_pb2.GetDistributionSettingsResponse(settings=settings_proto(settings, version))

    async def UpdateDistributionSettings(self, request, context):
        settings, version = await self.distribution.update_settings(settings_of(request.settings),
                                                                    request.expected_version)
        return member_pb2.UpdateDistributionSettingsResponse(settings=settings_proto(settings, version))

    async def CreateDistributorLevel(self, request, context):
        level, created = await self.distribution.create_level(request.idempotency_key, request.name,
                                                              request.level1_rate_bp, request.level2_rate_bp)
        return member_pb2.CreateDistributorLevelResponse(level=level_proto(level), created=created)

    async def UpdateDistributorLevel(self, request, context):
        level = await self.distribution.update_level(request.level_id, request.name, request.level1_rate_bp,
                                                     request.level2_rate_bp, request.expected_version)
        return member_pb2.UpdateDistributorLevelResponse(level=level_proto(level))

    async def ListDistributorLevels(self, request, context):
        return member_pb2.ListDistributorLevelsResponse(
            levels=[level_proto(lv) for lv in await self.distribution.list_levels()])

    async def ApplyForDistributor(self, request, context):
        d = await self.distribution.apply(request.reason)
        return member_pb2.ApplyForDistributorResponse(distributor=distributor_proto(d, await self.distribution.rates(d)))

    async def GetMyDistributor(self, request, context):
        mine = await self.distribution.mine()
        return member_pb2.GetMyDistributorResponse(
            distributor=distributor_proto(mine.distributor, mine.rates),
            upline_nickname_masked=mine.upline_nickname_masked, bound_customers=mine.bound_customers,
            team_distributors=mine.team_distributors)

    async def ListMyTeam(self, request, context):
        rows, token = await self.distribution.my_team(team_kind_of(request.kind), request.page_size,
                                                      request.page_token)
        out = []
        for row in rows:
            member = member_pb2.TeamMember(kind=TEAM_KIND[row.kind], nickname_masked=row.nickname_masked,
                                           expired=row.expired)
            if row.since:
                member.since.CopyFrom(timestamp(row.since))
            out.append(member)
        return member_pb2.ListMyTeamResponse(members=out, next_page_token=token)

    async def ListDistributorApplications(self, request, context):
        rows, token = await self.distribution.listing(_state_filter(request.state), request.page_size,
                                                   request.page_token, applications=True)
        return member_pb2.ListDistributorApplicationsResponse(
            distributors=[distributor_proto(d, r) for d, r in rows], next_page_token=token)

    async def ListDistributors(self, request, context):
        rows, token = await self.distribution.listing(_state_filter(request.state), request.page_size,
                                                   request.page_token)
        return member_pb2.ListDistributorsResponse(distributors=[distributor_proto(d, r) for d, r in rows],
                                                   next_page_token=token)

    async def ApproveDistributor(self, request, context):
        d = await self.distribution.approve(request.member_id)
        return member_pb2.ApproveDistributorResponse(distributor=distributor_proto(d, await self.distribution.rates(d)))

    async def RejectDistributor(self, request, context):
        d = await self.distribution.reject(request.member_id, request.reason)
        return member_pb2.RejectDistributorResponse(distributor=distributor_proto(d, await self.distribution.rates(d)))

    async def SetDistributorEnabled(self, request, context):
        d = await self.distribution.set_enabled(request.member_id, request.enabled)
        return member_pb2.SetDistributorEnabledResponse(
            distributor=distributor_proto(d, await self.distribution.rates(d)))

    async def SetDistributorLevel(self, request, context):
        d = await self.distribution.set_level(request.member_id, request.level_id)
        return member_pb2.SetDistributorLevelResponse(
            distributor=distributor_proto(d, await self.distribution.rates(d)))

    async def GetDistributor(self, request, context):
        d, rates = await self.distribution.get(request.member_id)
        return member_pb2.GetDistributorResponse(distributor=distributor_proto(d, rates))

    async def BindExclusiveGuide(self, request, context):
        guide_id, bound = await self.distribution.bind_guide(request.guide_id)
        return member_pb2.BindExclusiveGuideResponse(guide_id=guide_id, bound=bound)

    async def ReassignExclusiveGuide(self, request, context):
        return member_pb2.ReassignExclusiveGuideResponse(
            guide_id=await self.distribution.reassign_guide(request.member_id, request.guide_id))

    async def SetGuideStore(self, request, context):
        store = await self.distribution.set_guide_store(request.guide_id, request.store)
        return member_pb2.SetGuideStoreResponse(guide_id=request.guide_id, store=store)

    async def ListMyGuideCustomers(self, request, context):
        rows, token = await self.distribution.my_guide_customers(request.page_size, request.page_token)
        out = []
        for row in rows:
            c = member_pb2.GuideCustomer(member_id=row.member_id, nickname_masked=row.nickname_masked,
                                         phone_masked=row.phone_masked, tags=list(row.tags))
            if row.bound_at:
                c.bound_at.CopyFrom(timestamp(row.bound_at))
            if row.last_paid_at:
                c.last_paid_at.CopyFrom(timestamp(row.last_paid_at))
            out.append(c)
        return member_pb2.ListMyGuideCustomersResponse(customers=out, next_page_token=token)

    async def ResolveReferral(self, request, context):
        credit = await self.distribution.resolve(request.member_id, request.sharer_id)
        return member_pb2.ResolveReferralResponse(referral=referral_proto(credit))
