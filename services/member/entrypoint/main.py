"""Wires the member service: `python -m services.member`."""
from __future__ import annotations


from services.member.adapters import documents, repositories
from services.member.adapters.identity import ScryptPasswords, ThreadedProvider
from services.member.application.admin import StaffAdmin
from services.member.application.lockout import LoginGuard
from services.member.application.members import Members
from services.member.application.merchants import MerchantAdmin
from services.member.application.points import OrderPoints
from services.member.application.pricing import MemberPricing
from services.member.application.sessions import Sessions
from services.member.application.staff import StaffAccess
from services.member.domain.identity import SandboxProvider
from services.member.domain.lockout import LoginLimits
from services.member.entrypoint import events, servicer
from siyu_kit import service
from siyu_kit.config import env_count
from siyu_kit.service import Parts, Runtime


def build(runtime: Runtime) -> Parts:
    documents.ensure_indexes()
    # Identity providers by the name a merchant's config selects. WeChat joins here once
    # its app credentials are configured; until then only the sandbox is offered.
    providers = {SandboxProvider.name: ThreadedProvider(SandboxProvider())}
    merchants = repositories.MerchantRepository()
    staff_users = repositories.StaffRepository()
    members_repo = repositories.MemberRepository()
    ledger = repositories.PointsLedger()
    passwords = ScryptPasswords()
    sessions = Sessions(runtime.settings.jwt_secret, staff_users, members_repo, repositories.RefreshTokenRepository())
    limits = LoginLimits(per_account=env_count("STAFF_LOGIN_MAX_FAILURES", 10),
                         per_address=env_count("STAFF_LOGIN_MAX_FAILURES_PER_ADDRESS", 50))
    members = Members(sessions, providers, members_repo, repositories.IdentityRepository(), merchants, ledger)
    staff = StaffAccess(sessions, LoginGuard(repositories.LoginAttemptRepository(), limits), merchants, staff_users,
                        passwords)
    api_keys = repositories.ApiKeyRepository()
    admin = MerchantAdmin(merchants, api_keys, staff_users, passwords)
    staff_admin = StaffAdmin(merchants, api_keys, staff_users, passwords, repositories.AuditLogRepository(), ledger,
                             repositories.MemberDirectoryRepository())
    return Parts(
        servicers=[(servicer.ADD, servicer.MemberServicer(members, staff, sessions, MemberPricing(merchants, ledger),
                                                          admin, staff_admin),
                    servicer.FULL_NAME)],
        outbox_collections=repositories.outbox_collections(),
        subscriptions=events.subscriptions(OrderPoints(members_repo, merchants, ledger)),
    )


def main() -> None:
    service.run("member", build)
