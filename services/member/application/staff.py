"""Staff sessions: login (behind the lock-out), refresh and logout."""
from __future__ import annotations

from dataclasses import dataclass

from services.member.application.lockout import LoginGuard
from services.member.application.ports import MerchantRepository, PasswordHasher, StaffRepository
from services.member.application.sessions import Sessions
from services.member.domain.lockout import account_subject
from services.member.domain.passwords import DECOY_HASH
from siyu_kit import auth, context
from siyu_kit.errors import Unauthenticated, Violations

LOGIN_FAILED = "wrong merchant, username or password"


@dataclass(frozen=True)
class StaffSession:
    access_token: str
    refresh_token: str
    expires_in: int
    roles: tuple[str, ...]


class StaffAccess:
    def __init__(self, sessions: Sessions, guard: LoginGuard, merchants: MerchantRepository, staff: StaffRepository,
                 passwords: PasswordHasher):
        self.sessions = sessions
        self.guard = guard
        self.merchants = merchants
        self.staff = staff
        self.passwords = passwords

    async def login(self, merchant_code: str, username: str, password: str) -> StaffSession:
        v = Violations()
        v.check(bool(merchant_code), "merchant_code", "required")
        v.check(bool(username), "username", "required")
        v.check(bool(password), "password", "required")
        v.raise_if_any()
        # Before any password is checked: the 11th attempt of a minute never reaches it.
        taken = await self.guard.enter(account_subject(merchant_code, username), context.current().client_address)
        merchant = await self.merchants.by_code(merchant_code)
        staff = await self.staff.by_username(merchant.id, username) if merchant else None
        # The same work and the same answer whichever part is wrong: no user enumeration.
        ok = await self.passwords.verify(password, staff.password_hash if staff else DECOY_HASH)
        if not (ok and staff) or staff.disabled:
            raise Unauthenticated(LOGIN_FAILED, reason="LOGIN_FAILED")
        await self.guard.succeeded(taken)
        issued = await self.sessions.issue(merchant.id, staff.id, staff.token_version, staff.roles)
        return StaffSession(issued.access_token, issued.refresh_token, issued.expires_in, staff.roles)

    async def refresh(self, refresh_token: str) -> StaffSession:
        v = Violations()
        v.check(bool(refresh_token), "refresh_token", "required")
        v.raise_if_any()
        claims, subject = await self.sessions.redeem(refresh_token, auth.STAFF_REFRESH)
        # Roles are read now; any change of them has moved the version and ended this token.
        issued = await self.sessions.issue(claims.merchant_id, claims.subject, subject.version, subject.roles)
        return StaffSession(issued.access_token, issued.refresh_token, issued.expires_in, subject.roles)

    async def logout(self, refresh_token: str) -> None:
        ctx = context.current()
        staff_id = ctx.require_staff()
        await self.sessions.logout(ctx.merchant_id, staff_id, refresh_token, auth.STAFF_REFRESH)
