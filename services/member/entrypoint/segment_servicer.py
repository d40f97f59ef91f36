"""The tags, RFM and segments RPCs of MemberService: proto in, use case, proto out."""
from __future__ import annotations

from siyu.member.v1 import member_pb2

from services.member.application.segments import Segments
from services.member.domain import segments as rules
from services.member.domain.segments import Condition, RfmSettings, Rule, Segment, Tag
from siyu_kit.protos import timestamp


def settings_proto(s: RfmSettings) -> member_pb2.RfmSettings:
    return member_pb2.RfmSettings(recency_days=list(s.recency_days), frequency_counts=list(s.frequency_counts),
                                  monetary_amounts=list(s.monetary_amounts), midpoint=s.midpoint,
                                  lapsed_days=s.lapsed_days)


def settings_of(p: member_pb2.RfmSettings) -> RfmSettings:
    return RfmSettings(recency_days=tuple(p.recency_days), frequency_counts=tuple(p.frequency_counts),
                       monetary_amounts=tuple(p.monetary_amounts), midpoint=p.midpoint, lapsed_days=p.lapsed_days)


def rule_of(p: member_pb2.SegmentRule) -> Rule:
    return Rule(any_of=p.any,
                conditions=tuple(Condition(c.field, c.op, tuple(c.values) if rules.string_valued(c.field)
                                           else tuple(c.numbers)) for c in p.conditions),
                rules=tuple(rule_of(r) for r in p.rules))


def rule_proto(rule: Rule) -> member_pb2.SegmentRule:
    return member_pb2.SegmentRule(
        any=rule.any_of,
        conditions=[member_pb2.SegmentCondition(field=c.field, op=c.op,
                                                values=list(c.values) if rules.string_valued(c.field) else [],
                                                numbers=[] if rules.string_valued(c.field) else list(c.values))
                    for c in rule.conditions],
        rules=[rule_proto(r) for r in rule.rules])


def segment_proto(s: Segment, count: int = 0) -> member_pb2.Segment:
    return member_pb2.Segment(segment_id=s.id, name=s.name, rule=rule_proto(s.rule), created_at=timestamp(s.created_at),
                              member_count=count)


def tag_proto(t: Tag) -> member_pb2.Tag:
    return member_pb2.Tag(tag_id=t.id, group_id=t.group_id, name=t.name)


class SegmentRpcs:
    segments: Segments

    async def GetRfmSettings(self, request, context):
        return member_pb2.GetRfmSettingsResponse(settings=settings_proto(await self.segments.get_settings()))

    async def UpdateRfmSettings(self, request, context):
        saved = await self.segments.update_settings(settings_of(request.settings))
        return member_pb2.UpdateRfmSettingsResponse(settings=settings_proto(saved))

    async def CreateTagGroup(self, request, context):
        group = await self.segments.create_group(request.name)
        return member_pb2.CreateTagGroupResponse(group=member_pb2.TagGroup(group_id=group.id, name=group.name))

    async def ListTagGroups(self, request, context):
        groups, tags = await self.segments.tag_groups()
        return member_pb2.ListTagGroupsResponse(groups=[
            member_pb2.TagGroup(group_id=g.id, name=g.name, tags=[tag_proto(t) for t in tags if t.group_id == g.id])
            for g in groups])

    async def DeleteTagGroup(self, request, context):
        await self.segments.delete_group(request.group_id)
        return member_pb2.DeleteTagGroupResponse()

    async def CreateTag(self, request, context):
        return member_pb2.CreateTagResponse(tag=tag_proto(await self.segments.create_tag(request.group_id,
                                                                                         request.name)))

    async def DeleteTag(self, request, context):
        await self.segments.delete_tag(request.tag_id)
        return member_pb2.DeleteTagResponse()

    async def TagMembers(self, request, context):
        changed, unknown = await self.segments.retag(request.tag_id, list(request.member_ids), add=True)
        return member_pb2.TagMembersResponse(tagged=changed, unknown_member_ids=unknown)

    async def UntagMembers(self, request, context):
        changed, unknown = await self.segments.retag(request.tag_id, list(request.member_ids), add=False)
        return member_pb2.UntagMembersResponse(untagged=changed, unknown_member_ids=unknown)

    async def PreviewSegment(self, request, context):
        return member_pb2.PreviewSegmentResponse(member_count=await self.segments.preview(rule_of(request.rule)))

    async def CreateSegment(self, request, context):
        segment = await self.segments.create(request.name, rule_of(request.rule))
        return member_pb2.CreateSegmentResponse(segment=segment_proto(segment))

    async def GetSegment(self, request, context):
        segment, count = await self.segments.get(request.segment_id)
        return member_pb2.GetSegmentResponse(segment=segment_proto(segment, count))

    async def ListSegments(self, request, context):
        rows, token = await self.segments.list(request.page_size, request.page_token)
        return member_pb2.ListSegmentsResponse(segments=[segment_proto(s) for s in rows], next_page_token=token)

    async def ListSegmentMembers(self, request, context):
        ids, token = await self.segments.members_of(request.segment_id, request.page_size, request.page_token)
        return member_pb2.ListSegmentMembersResponse(member_ids=ids, next_page_token=token)

    async def DeleteSegment(self, request, context):
        await self.segments.delete(request.segment_id)
        return member_pb2.DeleteSegmentResponse()
