"""The referral RPCs of MemberService: proto in, use case, proto out."""
from __future__ import annotations

from siyu.member.v1 import member_pb2

from services.member.adapters.referral_store import reward_proto
from services.member.application.referral import Referrals
from services.member.domain import referral as rules
from services.member.domain.referral import ReferralSettings
from siyu_kit.protos import timestamp

REWARD_KIND = {rules.POINTS: member_pb2.REFERRAL_REWARD_KIND_POINTS,
               rules.COUPON: member_pb2.REFERRAL_REWARD_KIND_COUPON}
REWARD_KIND_BACK = {number: name for name, number in REWARD_KIND.items()}
BINDING = {rules.BOUND: member_pb2.REFERRAL_BINDING_BOUND, rules.UNKNOWN_CODE: member_pb2.REFERRAL_BINDING_UNKNOWN_CODE,
           rules.NOT_NEW_MEMBER: member_pb2.REFERRAL_BINDING_NOT_NEW_MEMBER,
           rules.ALREADY_BOUND: member_pb2.REFERRAL_BINDING_ALREADY_BOUND, rules.SELF: member_pb2.REFERRAL_BINDING_SELF,
           rules.CYCLE: member_pb2.REFERRAL_BINDING_CYCLE}


def binding_proto(outcome: str) -> int:
    return BINDING.get(outcome, member_pb2.REFERRAL_BINDING_UNSPECIFIED)


def settings_proto(s: ReferralSettings) -> member_pb2.ReferralSettings:
    return member_pb2.ReferralSettings(
        enabled=s.enabled, inviter_reward_kind=REWARD_KIND.get(s.inviter_reward_kind, 0),
        inviter_points=s.inviter_points, inviter_coupon_template_id=s.inviter_coupon_template_id,
        invitee_coupon_template_id=s.invitee_coupon_template_id, monthly_cap=s.monthly_cap)


def settings_of(p: member_pb2.ReferralSettings) -> ReferralSettings:
    return ReferralSettings(enabled=p.enabled, inviter_reward_kind=REWARD_KIND_BACK.get(p.inviter_reward_kind, ""),
                            inviter_points=p.inviter_points, inviter_coupon_template_id=p.inviter_coupon_template_id,
                            invitee_coupon_template_id=p.invitee_coupon_template_id, monthly_cap=p.monthly_cap)


class ReferralRpcs:
    referrals: Referrals

    async def GetMyReferral(self, request, context):
        mine = await self.referrals.mine(request.page_size, request.page_token)
        return member_pb2.GetMyReferralResponse(
            invite_code=mine.invite_code, inviter_nickname_masked=mine.inviter_nickname_masked, invited=mine.invited,
            invitees=[member_pb2.Invitee(referral_id=i.referral_id, nickname_masked=i.nickname_masked,
                                         phone_masked=i.phone_masked, bound_at=timestamp(i.bound_at),
                                         first_order_completed=i.first_order_completed,
                                         reward=reward_proto(i.reward)) for i in mine.invitees],
            next_page_token=mine.next_page_token)

    async def GetReferralSettings(self, request, context):
        return member_pb2.GetReferralSettingsResponse(settings=settings_proto(await self.referrals.get_settings()))

    async def UpdateReferralSettings(self, request, context):
        saved = await self.referrals.update_settings(settings_of(request.settings))
        return member_pb2.UpdateReferralSettingsResponse(settings=settings_proto(saved))

    async def BindInvitee(self, request, context):
        outcome, now = await self.referrals.bind_new(request.inviter_id, request.invitee_id, request.cause)
        return member_pb2.BindInviteeResponse(binding=binding_proto(outcome), bound_now=now)
