"""The profile RPCs of MemberService: proto in, use case, proto out."""
from __future__ import annotations

from siyu.member.v1 import member_pb2

from services.member.adapters import profile_messages as out
from services.member.application.profile import Profiles


class ProfileRpcs:
    profiles: Profiles

    # ---- members -------------------------------------------------------------------------
    async def GetMyProfile(self, request, context):
        return member_pb2.GetMyProfileResponse(profile=out.profile_proto(await self.profiles.my_profile()))

    async def UpdateMyProfile(self, request, context):
        profile = await self.profiles.update_my_profile(out.changes_of(request), request.expected_version)
        return member_pb2.UpdateMyProfileResponse(profile=out.profile_proto(profile))

    async def SetMarketingConsent(self, request, context):
        profile = await self.profiles.set_marketing_consent(request.consent)
        return member_pb2.SetMarketingConsentResponse(profile=out.profile_proto(profile))

    # ---- staff ---------------------------------------------------------------------------
    async def RevealMemberPhone(self, request, context):
        phone = await self.profiles.reveal_phone(request.member_id, request.reason)
        return member_pb2.RevealMemberPhoneResponse(phone=phone)

    async def SetMemberBirthday(self, request, context):
        profile = await self.profiles.correct_birthday(request.member_id, out.birthday_of(request.birthday),
                                                       request.reason)
        return member_pb2.SetMemberBirthdayResponse(profile=out.profile_proto(profile))
