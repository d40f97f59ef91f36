"""The staff administration and platform RPCs of MemberService: proto in, use case, proto out."""
from __future__ import annotations

from datetime import timezone

from siyu.member.v1 import member_pb2

from siyu_kit.access import ROLE_NAMES
from siyu_kit.protos import CHANNEL_NAME

from services.member.adapters import admin_messages as out
from services.member.adapters.messages import member_proto
from services.member.application.admin import StaffAdmin


class AdminRpcs:
    admin: StaffAdmin

    async def ListStaffUsers(self, request, context):
        users, token = await self.admin.list_staff(request.username_prefix, request.include_disabled,
                                                   request.page_size, request.page_token)
        return member_pb2.ListStaffUsersResponse(users=[out.staff_proto(s) for s in users], next_page_token=token)

    async def CreateStaffUser(self, request, context):
        staff = await self.admin.create_staff(request.username, request.password,
                                              [ROLE_NAMES.get(r, "UNSPECIFIED") for r in request.roles])
        return member_pb2.CreateStaffUserResponse(user=out.staff_proto(staff))

    async def SetStaffUserDisabled(self, request, context):
        staff = await self.admin.set_staff_disabled(request.staff_id, request.disabled)
        return member_pb2.SetStaffUserDisabledResponse(user=out.staff_proto(staff))

    async def RotateStaffPassword(self, request, context):
        staff = await self.admin.rotate_staff_password(request.staff_id, request.new_password)
        return member_pb2.RotateStaffPasswordResponse(user=out.staff_proto(staff))

    async def ListApiKeys(self, request, context):
        keys, token = await self.admin.list_keys(CHANNEL_NAME.get(request.channel, ""), request.include_disabled,
                                                 request.page_size, request.page_token)
        return member_pb2.ListApiKeysResponse(keys=[out.key_proto(k) for k in keys], next_page_token=token)

    async def CreateApiKey(self, request, context):
        issued = await self.admin.create_key(CHANNEL_NAME.get(request.channel, ""))
        return member_pb2.CreateApiKeyResponse(key=out.key_proto(issued.key), api_key=issued.api_key)

    async def DisableApiKey(self, request, context):
        return member_pb2.DisableApiKeyResponse(key=out.key_proto(await self.admin.disable_key(request.key_id)))

    async def RotateApiKey(self, request, context):
        issued, replaced = await self.admin.rotate_key(request.key_id)
        return member_pb2.RotateApiKeyResponse(key=out.key_proto(issued.key), api_key=issued.api_key,
                                               replaced_key_id=replaced)

    async def ListAuditEntries(self, request, context):
        entries, token = await self.admin.list_audit(request.action, request.actor_id, request.target_id,
                                                     request.page_size, request.page_token)
        return member_pb2.ListAuditEntriesResponse(entries=[out.audit_proto(e) for e in entries],
                                                   next_page_token=token)

    async def GetTierConfig(self, request, context):
        return member_pb2.GetTierConfigResponse(config=out.tier_config_proto(await self.admin.tier_config()))

    async def UpdateTierConfig(self, request, context):
        settings = await self.admin.update_tier_config([out.level_of(lv) for lv in request.levels],
                                                       request.expected_version)
        return member_pb2.UpdateTierConfigResponse(config=out.tier_config_proto(settings))

    async def GetMyTier(self, request, context):
        return out.standing_proto(await self.admin.my_tier())

    async def OnboardMerchant(self, request, context):
        done = await self.admin.onboard(request.code, request.name, request.time_zone, request.owner_username,
                                        request.owner_password, [CHANNEL_NAME.get(c, "") for c in request.channels])
        return member_pb2.OnboardMerchantResponse(
            merchant=member_pb2.Merchant(merchant_id=done.merchant.merchant_id, code=done.merchant.code,
                                         name=done.merchant.name, time_zone=done.merchant.time_zone),
            owner_staff_id=done.owner_id, api_keys=[out.issued_proto(k) for k in done.keys])

    async def ListMembers(self, request, context):
        def moment(name: str):
            return getattr(request, name).ToDatetime(tzinfo=timezone.utc) if request.HasField(name) else None

        tier = member_pb2.Tier.Name(request.tier).removeprefix("TIER_") if request.tier else ""
        members, token = await self.admin.list_members(request.phone_suffix, request.nickname_prefix, tier,
                                                       moment("registered_from"), moment("registered_before"),
                                                       request.page_size, request.page_token)
        return member_pb2.ListMembersResponse(members=[member_proto(m) for m in members], next_page_token=token)

