"""Tokens of staff users and members: issue, refresh (each refresh token once), logout,
and the token version the gateway checks on every use.

A subject's token version is stored on its document and written into every token it is
issued. Bumping it ends every token issued before: the gateway refuses a token whose
version is not the current one within its version cache (seconds).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from siyu_kit import auth
from siyu_kit.errors import Unauthenticated, Violations
from siyu_kit.ids import new_id
from siyu_kit.protos import utcnow

from services.member.application.ports import MemberRepository, RefreshTokens, StaffRepository
from services.member.domain.sessions import (MEMBER_PREFIX, NO_SUBJECT, REVOKED, STAFF_PREFIX, USED,
                                             RefreshToken, Subject)

MAX_SUBJECTS = 1000


@dataclass(frozen=True)
class Issued:
    access_token: str
    refresh_token: str
    expires_in: int


def _revoked() -> Unauthenticated:
    return Unauthenticated("the token has been revoked; log in again", reason="TOKEN_REVOKED")


class Sessions:
    def __init__(self, secret: "str | auth.TokenKeys", staff: StaffRepository, members: MemberRepository, tokens: RefreshTokens):
        self.secret = secret
        self.staff = staff
        self.members = members
        self.tokens = tokens

    # ---- subjects -------------------------------------------------------------------
    async def subject(self, merchant_id: str, subject_id: str) -> Subject:
        """The subject's current token version; inactive when gone or disabled."""
        if subject_id.startswith(STAFF_PREFIX):
            return await self.staff.subject(merchant_id, subject_id) or NO_SUBJECT
        if subject_id.startswith(MEMBER_PREFIX):
            return await self.members.subject(merchant_id, subject_id) or NO_SUBJECT
        return NO_SUBJECT

    async def subjects(self, wanted: list[tuple[str, str]]) -> list[Subject]:
        """Many subjects' versions, in order: one read per merchant and kind, for the
        gateway's batched checks."""
        v = Violations()
        v.check(len(wanted) <= MAX_SUBJECTS, "subjects", f"at most {MAX_SUBJECTS}")
        v.raise_if_any()
        groups: dict[tuple[str, str], list[str]] = {}
        for merchant_id, subject_id in wanted:
            prefix = subject_id[:4]
            if prefix in (STAFF_PREFIX, MEMBER_PREFIX) and merchant_id:
                groups.setdefault((merchant_id, prefix), []).append(subject_id)
        found: dict[tuple[str, str], Subject] = {}
        for (merchant_id, prefix), ids in groups.items():
            store = self.staff if prefix == STAFF_PREFIX else self.members
            for subject_id, subject in (await store.subjects(merchant_id, ids)).items():
                # The batch answer carries no roles: the gateway checks versions only.
                found[(merchant_id, subject_id)] = Subject(subject.version, subject.active)
        return [found.get(key, NO_SUBJECT) for key in wanted]

    async def bump(self, merchant_id: str, subject_id: str) -> None:
        if subject_id.startswith(STAFF_PREFIX):
            await self.staff.bump_token_version(merchant_id, subject_id)
        else:
            await self.members.bump_token_version(merchant_id, subject_id)

    # ---- tokens ---------------------------------------------------------------------
    async def issue(self, merchant_id: str, subject_id: str, version: int, roles: tuple[str, ...] = ()) -> Issued:
        staff = subject_id.startswith(STAFF_PREFIX)
        access_kind, access_ttl = (auth.STAFF, auth.STAFF_TTL_S) if staff else (auth.MEMBER, auth.ACCESS_TTL_S)
        refresh_kind, refresh_ttl = ((auth.STAFF_REFRESH, auth.STAFF_REFRESH_TTL_S) if staff
                                     else (auth.REFRESH, auth.REFRESH_TTL_S))
        token_id = new_id("rft")
        now = utcnow()
        await self.tokens.add(RefreshToken(token_id, merchant_id, subject_id, now, now + timedelta(seconds=refresh_ttl)))
        access = auth.issue(self.secret, auth.TokenClaims(access_kind, subject_id, merchant_id, roles,
                                                          version=version), access_ttl)
        refresh = auth.issue(self.secret, auth.TokenClaims(refresh_kind, subject_id, merchant_id,
                                                           version=version, token_id=token_id), refresh_ttl)
        return Issued(access, refresh, access_ttl)

    async def redeem(self, refresh_token: str, kind: str, merchant_id: str = "") -> tuple[auth.TokenClaims, Subject]:
        """Uses a refresh token up. A token used a second time is a stolen copy or its
        thief's: every token of the subject ends (version bump)."""
        claims = auth.verify(self.secret, refresh_token, kind)
        if (merchant_id and claims.merchant_id != merchant_id) or not claims.token_id:
            raise Unauthenticated("the token is not valid", reason="TOKEN_INVALID")
        if not await self.tokens.end(claims.merchant_id, claims.token_id, claims.subject, USED):
            await self.bump(claims.merchant_id, claims.subject)
            raise _revoked()
        subject = await self.subject(claims.merchant_id, claims.subject)
        if not subject.active or subject.version != claims.version:
            raise _revoked()
        return claims, subject

    async def logout(self, merchant_id: str, subject_id: str, refresh_token: str, kind: str) -> None:
        """Ends every token of the subject (the bump also outdates its refresh tokens); the
        given refresh token is also revoked for good. An expired one is simply ignored."""
        token_id = ""
        if refresh_token:
            try:
                claims = auth.verify(self.secret, refresh_token, kind)
            except Unauthenticated as error:
                if error.reason != "TOKEN_EXPIRED":
                    raise
            else:
                if claims.merchant_id != merchant_id or claims.subject != subject_id or not claims.token_id:
                    raise Unauthenticated("the refresh token is not the caller's", reason="TOKEN_INVALID")
                token_id = claims.token_id
        await self.bump(merchant_id, subject_id)
        if token_id:
            await self.tokens.end(merchant_id, token_id, subject_id, REVOKED)
