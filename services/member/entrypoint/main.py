"""Wires the member service: `python -m services.member`."""
from __future__ import annotations


from services.member.adapters import documents, points_store, profile_store, repositories, wechat_store
from services.member.adapters.wechat import SandboxSms, WeChatHttpApi
from services.member.adapters.identity import ScryptPasswords, ThreadedProvider
from services.member.adapters.facts_marks import FactsMarkRepository
from services.member.application.addresses import AddressBooks
from services.member.application.backfill import Backfills
from services.member.application.admin import StaffAdmin
from services.member.application.lockout import LoginGuard
from services.member.application.members import Members
from services.member.application.merchants import MerchantAdmin
from services.member.application.points import OrderPoints, PointsEconomy
from services.member.application.sessions import Sessions
from services.member.application.staff import StaffAccess
from services.member.application.wechat import WeChatIdentity
from services.member.domain.identity import SandboxProvider
from services.member.domain.lockout import LoginLimits
from services.member.entrypoint import (checkin_wiring, coupon_wiring, events, jobs, profile_wiring, referral_wiring,
                                           segment_wiring, servicer, stored_value_wiring)
from services.member.entrypoint import member_view_wiring
from services.member.entrypoint import personal_data_wiring
from services.member.entrypoint import distribution_wiring
from services.member.entrypoint import commission_wiring
from services.member.entrypoint import points_mall_wiring
from services.member.entrypoint import checkout_caches
from siyu_kit import auth, service
from siyu_kit.config import env_count, env_seconds
from siyu_kit.ids import new_id
from siyu_kit.sealing import Sealer
from siyu_kit.service import Parts, Runtime


def build(runtime: Runtime) -> Parts:
    documents.ensure_indexes()
    wechat_store.ensure_indexes()
    # Identity providers by the name a merchant's config selects. WeChat takes over a
    # channel's codes once the merchant has set its WeChat app there (SetWeChatApp);
    # "sandbox:<unionid>" codes stay with the sandbox.
    providers = {SandboxProvider.name: ThreadedProvider(SandboxProvider())}
    merchants = repositories.MerchantRepository()
    staff_users = repositories.StaffRepository()
    members_repo = repositories.MemberRepository()
    ledger = points_store.PointsStore()
    passwords = ScryptPasswords()
    sessions = Sessions(auth.keys_from_env(runtime.settings.jwt_secret), staff_users, members_repo, repositories.RefreshTokenRepository())
    limits = LoginLimits(per_account=env_count("STAFF_LOGIN_MAX_FAILURES", 10),
                         per_address=env_count("STAFF_LOGIN_MAX_FAILURES_PER_ADDRESS", 50))
    sealer = Sealer.from_setting(runtime.settings.data_key)
    # Look-ups (a phone's member) hash with a key of their own: rotating the data key moves none.
    lookup = wechat_store.lookup_key(runtime.settings.lookup_key)
    index_key = wechat_store.index_key(lookup)
    phones = wechat_store.PhoneBookRepository(sealer, index_key)
    wechat = WeChatIdentity(wechat_store.WeChatAppRepository(sealer), WeChatHttpApi(runtime.settings.wechat_base_url),
                            phones, wechat_store.SmsChallengeRepository(),
                            SandboxSms(runtime.settings.wechat_base_url), index_key, members_repo)
    members = Members(sessions, providers, members_repo, repositories.IdentityRepository(), merchants, ledger,
                      wechat, phones)
    staff = StaffAccess(sessions, LoginGuard(repositories.LoginAttemptRepository(), limits), merchants, staff_users,
                        passwords)
    api_keys = repositories.ApiKeyRepository()
    admin = MerchantAdmin(merchants, api_keys, staff_users, passwords)
    staff_admin = StaffAdmin(merchants, api_keys, staff_users, passwords, repositories.AuditLogRepository(), ledger,
                             repositories.MemberDirectoryRepository(), phones)
    # The points economy: holds for checkout, refunds, staff and the member centre; its jobs.
    economy = PointsEconomy(members_repo, merchants, ledger, repositories.AuditLogRepository())
    # Phones in address books are sealed with the data key, bound to the merchant.
    addresses = AddressBooks(repositories.AddressBookRepository(), Sealer.from_setting(runtime.settings.data_key),
                             wechat_store.fingerprint_key(lookup))
    # ---- coupons ----
    coupons = coupon_wiring.use_cases(members_repo)
    # ---- end of coupons ----
    # ---- stored value ----
    stored_value = stored_value_wiring.use_cases(runtime, members_repo)
    # ---- end of stored value ----
    # ---- check-in ----
    checkin = checkin_wiring.use_cases(members_repo, merchants, ledger)
    # ---- end of check-in ----
    # ---- referral: invite codes, binding at registration, rewards on a first completed order ----
    referrals = referral_wiring.use_cases(members_repo, merchants, phones, ledger, coupons, index_key)
    members.referrals = referrals
    # ---- end of referral ----
    # ---- profile ----
    profiles = profile_wiring.use_cases(members_repo, phones, merchants, repositories.AuditLogRepository())
    # Birthday coupons named in the tier configuration must be the merchant's templates.
    staff_admin.coupon_templates = coupons.templates
    # Verified phones stored in clear before phones were sealed: sealed by a backfill.
    phone_seal = profile_store.PhoneSealBackfill(sealer, index_key)
    # ---- end of profile ----
    # ---- staff views: member search and the 360° view ----
    member_views = member_view_wiring.use_cases(runtime, merchants, ledger, phones)
    # ---- end of staff views ----
    # ---- personal data ----
    data_exports = personal_data_wiring.use_cases(runtime)
    erasures = personal_data_wiring.erasures(runtime, index_key)
    # ---- end of personal data ----
    # ---- segments: member statistics from order events, RFM, tags and segments ----
    segments = segment_wiring.use_cases(members_repo, merchants)
    segment_wiring.grant_audience(coupons, segments)
    # Growth (and so the tier) reaches the member's facts at the facts job's next run.
    order_points = OrderPoints(members_repo, merchants, ledger)
    facts_marks = FactsMarkRepository()
    for moves in (economy, order_points, checkin.points, referrals.points):
        moves.facts = facts_marks
    # ---- end of segments ----
    # ---- distribution: distributors, levels, bindings, exclusive guides, ResolveReferral ----
    distribution = distribution_wiring.use_cases(phones)
    distribution_subscriptions = distribution_wiring.subscriptions(distribution)
    # ---- end of distribution ----
    # ---- commissions and withdrawals: records and balances from order events, payouts ----
    commissions, withdrawals = commission_wiring.use_cases(runtime)
    # ---- end of commissions and withdrawals ----
    # ---- points mall: coupons for points ----
    points_mall = points_mall_wiring.use_cases(economy, coupons)
    # ---- end of points mall ----
    return Parts(
        servicers=[(servicer.ADD, points_mall_wiring.attach(servicer.MemberServicer(members, staff, sessions, checkout_caches.pricing(merchants, ledger),
                                                          admin, addresses, wechat, staff_admin, economy, coupons,
                                                          stored_value, checkin=checkin, referrals=referrals,
                                                          profiles=profiles, member_views=member_views,
                                                          data_exports=data_exports, erasures=erasures,
                                                          segments=segments, commissions=commissions,
                                                          withdrawals=withdrawals, distribution=distribution),
                                                          points_mall),
                    servicer.FULL_NAME)],
        outbox_collections=repositories.outbox_collections() + points_store.outbox_collections()
        + coupon_wiring.outbox_collections() + stored_value_wiring.outbox_collections()
        + checkin_wiring.outbox_collections() + referral_wiring.outbox_collections(),
        subscriptions=events.subscriptions(order_points)
        + coupon_wiring.subscriptions(coupons) + stored_value_wiring.subscriptions(stored_value)
        + referral_wiring.subscriptions(referrals) + personal_data_wiring.subscriptions(erasures)
        + segment_wiring.subscriptions(segments) + commission_wiring.subscriptions(commissions)
        + distribution_subscriptions,
        # Members stored before their growth and phone suffix were kept beside them; each
        # replica checks, and one at a time works (a lease), until every backfill is done.
        jobs=[service.Job("member-backfills", env_seconds("MEMBER_BACKFILL_INTERVAL_S", 5),
                          Backfills(repositories.BackfillProgressRepository(),
                                    [repositories.GrowthBackfill(), wechat_store.PhoneSuffixBackfill(sealer),
                                     phone_seal],
                                    holder=new_id("bfh")).run)] + jobs.jobs(economy)
        + coupon_wiring.jobs(coupons) + stored_value_wiring.jobs(stored_value) + checkin_wiring.jobs(checkin)
        + profile_wiring.jobs(merchants, ledger, coupons) + personal_data_wiring.jobs(data_exports)
        + segment_wiring.jobs(segments) + commission_wiring.jobs(commissions, withdrawals)
        + points_mall_wiring.jobs(points_mall),
    )


def main() -> None:
    service.run("member", build)
