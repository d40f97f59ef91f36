"""The farm guard as every new-member reward uses it: the keyed hashes of a member's phone
and unionid (services/member/domain/referral.py `guard_hash`), whether anyone else got a
new-member reward under them, and keeping them once this member got one. Erasure adds an
erased member's hashes too, so a person who erases their account and registers again
earns no second new-member reward — neither the referral's invitee coupon nor the coupon
settings' new-member gift. One store (the FarmGuard port), shared by both."""
from __future__ import annotations

from services.member.application.ports import IdentityRepository, PhoneBook
from services.member.application.referral_ports import FarmGuard
from services.member.domain.referral import guard_hash


class NewMemberGuard:
    def __init__(self, guard: FarmGuard, phones: PhoneBook, identities: IdentityRepository, key: bytes):
        self.guard = guard
        self.phones = phones
        self.identities = identities
        self.key = key

    async def hashes(self, merchant_id: str, member_id: str) -> list[str]:
        """The hashes of the member's unionid and verified phone, those they have now."""
        hashes = []
        unionid = await self.identities.unionid_of(merchant_id, member_id)
        if unionid:
            hashes.append(guard_hash(self.key, merchant_id, "unionid", unionid))
        phone = await self.phones.phone_of(merchant_id, member_id)
        if phone:
            hashes.append(guard_hash(self.key, merchant_id, "phone", phone))
        return hashes

    async def farmed(self, merchant_id: str, member_id: str, hashes: list[str]) -> bool:
        """Whether another member (an erased one) got a new-member reward, or was erased,
        under any of the hashes."""
        return bool(hashes) and bool(await self.guard.holders(merchant_id, hashes) - {member_id})

    async def keep(self, merchant_id: str, hashes: list[str], member_id: str) -> None:
        if hashes:
            await self.guard.add(merchant_id, hashes, member_id)
