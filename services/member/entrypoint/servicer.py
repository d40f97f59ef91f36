"""MemberService over gRPC: proto in, use case, proto out."""
from __future__ import annotations

from siyu.member.v1 import member_pb2, member_pb2_grpc

from services.member.adapters.messages import address_proto, entry_proto, member_proto
from services.member.application.addresses import AddressBooks, AddressForm
from services.member.application.coupons import CouponUseCases
from services.member.application.admin import StaffAdmin
from services.member.application.members import Members
from services.member.application.merchants import MerchantAdmin
from services.member.application.pricing import MemberPricing
from services.member.application.sessions import Sessions
from services.member.application.staff import StaffAccess
from services.member.application.wechat import WeChatIdentity
from services.member.entrypoint.admin_servicer import AdminRpcs
from services.member.entrypoint.coupon_servicer import CouponRpcs
from services.member.entrypoint.points_servicer import PointsRpcs, expiring_protos
from services.member.entrypoint.stored_value_servicer import StoredValueRpcs
from services.member.entrypoint.checkin_servicer import CheckInRpcs
from services.member.application.checkin import CheckIns
from services.member.entrypoint.referral_servicer import ReferralRpcs, binding_proto
from services.member.application.referral import Referrals
from services.member.entrypoint.profile_servicer import ProfileRpcs
from services.member.entrypoint.personal_data_servicer import PersonalDataRpcs
from services.member.application.personal_data import DataExports, Erasures
from services.member.application.profile import Profiles
from services.member.entrypoint.member_view_servicer import MemberViewRpcs
from services.member.application.member_views import MemberViews
from services.member.entrypoint.segment_servicer import SegmentRpcs
from services.member.application.segments import Segments
from services.member.application.stored_value import StoredValue
from services.member.application.points import PointsEconomy
from services.member.entrypoint.distribution_servicer import DistributionRpcs
from services.member.application.distribution import Distribution
from services.member.entrypoint.commission_servicer import CommissionRpcs
from services.member.application.commissions import CommissionLedger
from services.member.application.withdrawals import Withdrawals
from services.member.entrypoint.points_mall_servicer import PointsMallRpcs
from siyu_kit.access import ROLE_NAMES
from siyu_kit.protos import CHANNEL_BY_NAME, CHANNEL_NAME

ROLE_BY_NAME = {name: number for number, name in ROLE_NAMES.items()}


def _role_names(roles) -> list[str]:
    # UNSPECIFIED stays in the list so validation can name it.
    return [ROLE_NAMES.get(r, "UNSPECIFIED") for r in roles]


class MemberServicer(AdminRpcs, PointsRpcs, CouponRpcs, StoredValueRpcs, CheckInRpcs, ReferralRpcs, ProfileRpcs,
                     MemberViewRpcs, PersonalDataRpcs, SegmentRpcs, CommissionRpcs, DistributionRpcs, PointsMallRpcs,
                     member_pb2_grpc.MemberServiceServicer):
    def __init__(self, members: Members, staff: StaffAccess, sessions: Sessions, pricing: MemberPricing,
                 merchants: MerchantAdmin, addresses: AddressBooks, wechat: WeChatIdentity, admin: StaffAdmin,
                 economy: PointsEconomy, coupons: CouponUseCases, stored_value: StoredValue,
                 checkin: CheckIns | None = None, referrals: Referrals | None = None,
                 profiles: Profiles | None = None, member_views: MemberViews | None = None,
                 data_exports: DataExports | None = None, erasures: Erasures | None = None,
                 segments: Segments | None = None, commissions: CommissionLedger | None = None,
                 withdrawals: Withdrawals | None = None, distribution: Distribution | None = None):
        # commission records, balances and withdrawals (commission_servicer.CommissionRpcs)
        self.commissions, self.withdrawals = commissions, withdrawals
        self.distribution = distribution  # distributors, bindings, guides (distribution_servicer.DistributionRpcs)
        self.member_views = member_views  # staff search and 360° view (member_view_servicer.MemberViewRpcs)
        # PIPL export and erasure (personal_data_servicer.PersonalDataRpcs)
        self.data_exports, self.erasures = data_exports, erasures
        self.segments = segments  # tags, RFM and segments (segment_servicer.SegmentRpcs)
        self.referrals = referrals  # referral (referral_servicer.ReferralRpcs)
        self.profiles = profiles  # profiles (profile_servicer.ProfileRpcs)
        self.economy = economy  # the points economy (points_servicer.PointsRpcs)
        self.coupons = coupons  # coupons (coupon_servicer.CouponRpcs)
        self.stored_value = stored_value  # stored value (stored_value_servicer.StoredValueRpcs)
        self.checkin = checkin  # daily check-in (checkin_servicer.CheckInRpcs)
        self.wechat = wechat
        self.admin = admin
        self.members = members
        self.addresses = addresses
        self.merchants = merchants
        self.staff = staff
        self.sessions = sessions
        self.pricing = pricing

    async def Login(self, request, context):
        result = await self.members.login(request.code, request.nickname, request.invite_code)
        return member_pb2.LoginResponse(
            access_token=result.tokens.access_token, refresh_token=result.tokens.refresh_token,
            expires_in_seconds=result.tokens.expires_in, member=member_proto(result.member), created=result.created,
            referral=binding_proto(result.referral))

    async def RefreshToken(self, request, context):
        tokens = await self.members.refresh(request.refresh_token)
        return member_pb2.RefreshTokenResponse(access_token=tokens.access_token, refresh_token=tokens.refresh_token,
                                               expires_in_seconds=tokens.expires_in)

    async def Logout(self, request, context):
        await self.members.logout(request.refresh_token)
        return member_pb2.LogoutResponse()

    async def GetMe(self, request, context):
        return member_pb2.GetMeResponse(member=member_proto(await self.members.me()))

    async def GetPoints(self, request, context):
        # The points account: counters in one read, the latest entries, what expires when.
        summary, entries = await self.economy.my_points()
        return member_pb2.GetPointsResponse(
            balance=summary.balance, frozen=summary.frozen, available=summary.available,
            entries=[entry_proto(e) for e in entries], held=summary.held, owed=summary.owed,
            expiring=expiring_protos(summary))

    async def StaffLogin(self, request, context):
        session = await self.staff.login(request.merchant_code, request.username, request.password)
        return member_pb2.StaffLoginResponse(access_token=session.access_token, refresh_token=session.refresh_token,
                                             expires_in_seconds=session.expires_in,
                                             roles=[ROLE_BY_NAME[r] for r in session.roles if r in ROLE_BY_NAME])

    async def StaffRefreshToken(self, request, context):
        session = await self.staff.refresh(request.refresh_token)
        return member_pb2.StaffRefreshTokenResponse(
            access_token=session.access_token, refresh_token=session.refresh_token,
            expires_in_seconds=session.expires_in,
            roles=[ROLE_BY_NAME[r] for r in session.roles if r in ROLE_BY_NAME])

    async def StaffLogout(self, request, context):
        await self.staff.logout(request.refresh_token)
        return member_pb2.StaffLogoutResponse()

    async def GetTokenVersions(self, request, context):
        wanted = [(s.merchant_id, s.subject_id) for s in request.subjects]
        found = await self.sessions.subjects(wanted)
        return member_pb2.GetTokenVersionsResponse(versions=[
            member_pb2.TokenVersion(subject=asked, version=subject.version, active=subject.active)
            for asked, subject in zip(request.subjects, found)])

    async def ResolveApiKey(self, request, context):
        merchant_id, channel = await self.merchants.resolve_api_key(request.api_key)
        return member_pb2.ResolveApiKeyResponse(merchant_id=merchant_id, channel=CHANNEL_BY_NAME[channel])

    async def UpsertMerchant(self, request, context):
        merchant, created = await self.merchants.upsert_merchant(request.code, request.name, request.time_zone)
        return member_pb2.UpsertMerchantResponse(
            merchant=member_pb2.Merchant(merchant_id=merchant.merchant_id, code=merchant.code, name=merchant.name,
                                         time_zone=merchant.time_zone),
            created=created)

    async def UpsertApiKey(self, request, context):
        created = await self.merchants.upsert_api_key(request.merchant_id, CHANNEL_NAME.get(request.channel, ""),
                                                 request.api_key)
        return member_pb2.UpsertApiKeyResponse(created=created)

    async def UpsertStaffUser(self, request, context):
        staff_id, created = await self.merchants.upsert_staff_user(request.merchant_id, request.username,
                                                              request.password, _role_names(request.roles),
                                                              request.disabled)
        return member_pb2.UpsertStaffUserResponse(staff_id=staff_id, created=created)

    async def GetMemberPricing(self, request, context):
        tier, discount_bp = await self.pricing.of(request.member_id)
        return member_pb2.GetMemberPricingResponse(tier=member_pb2.Tier.Value(f"TIER_{tier}"),
                                                   tier_discount_bp=discount_bp)

    # ---- address book ----

    async def ListAddresses(self, request, context):
        return member_pb2.ListAddressesResponse(addresses=[address_proto(v) for v in await self.addresses.list()])

    async def CreateAddress(self, request, context):
        view, created = await self.addresses.create(request.idempotency_key, _form(request), request.is_default)
        return member_pb2.CreateAddressResponse(address=address_proto(view), created=created)

    async def UpdateAddress(self, request, context):
        view = await self.addresses.update(request.address_id, _form(request), request.expected_version)
        return member_pb2.UpdateAddressResponse(address=address_proto(view))

    async def DeleteAddress(self, request, context):
        return member_pb2.DeleteAddressResponse(default_address_id=await self.addresses.delete(request.address_id))

    async def SetDefaultAddress(self, request, context):
        return member_pb2.SetDefaultAddressResponse(address=address_proto(
            await self.addresses.set_default(request.address_id)))

    async def GetShippingAddress(self, request, context):
        found = await self.addresses.shipping(request.member_id, request.address_id)
        return member_pb2.GetShippingAddressResponse(address=address_proto(found.view), phone=found.phone)

    async def GetWechatOpenid(self, request, context):
        return member_pb2.GetWechatOpenidResponse(
            openid=await self.members.wechat_openid(request.member_id, request.channel))

    # ---- WeChat identity -------------------------------------------------------------

    async def BindWeChatPhone(self, request, context):
        await self.wechat.bind_wechat_phone(request.code)
        return member_pb2.BindWeChatPhoneResponse(member=member_proto(await self.members.me()))

    async def SendPhoneCode(self, request, context):
        return member_pb2.SendPhoneCodeResponse(expires_in_seconds=await self.wechat.send_sms_code(request.phone))

    async def BindSmsPhone(self, request, context):
        await self.wechat.bind_sms_phone(request.phone, request.code)
        return member_pb2.BindSmsPhoneResponse(member=member_proto(await self.members.me()))

    async def SetWeChatApp(self, request, context):
        app = await self.wechat.set_app(CHANNEL_NAME.get(request.channel, ""), request.appid, request.app_secret)
        return member_pb2.SetWeChatAppResponse(app=_app_proto(app))

    async def ListWeChatApps(self, request, context):
        return member_pb2.ListWeChatAppsResponse(apps=[_app_proto(a) for a in await self.wechat.list_apps()])


def _form(request) -> AddressForm:
    return AddressForm(recipient=request.recipient, phone=request.phone, province_code=request.province_code,
                       city_code=request.city_code, district_code=request.district_code, detail=request.detail)


def _app_proto(app) -> member_pb2.WeChatApp:
    return member_pb2.WeChatApp(channel=CHANNEL_BY_NAME[app.channel], appid=app.appid, secret_set=app.secret_set)


FULL_NAME = member_pb2.DESCRIPTOR.services_by_name["MemberService"].full_name
ADD = member_pb2_grpc.add_MemberServiceServicer_to_server
