"""What the member use cases need from storage and from identity providers. Every method
is async; implementations live outside the application layer and are wired in at start-up."""
from __future__ import annotations

from datetime import datetime
from typing import Protocol

from services.member.domain.addresses import AddressBook
from services.member.domain.admin import AuditEntry, MemberFilter
from services.member.domain.identity import ProviderIdentity
from services.member.domain.members import Member
from services.member.domain.merchants import ApiKey, Merchant, StaffUser
from services.member.domain.points import PointsAccount, PointsEntry
from services.member.domain.points_account import Cause, Movement, PointsBook
from services.member.domain.sessions import RefreshToken, Subject
from services.member.domain.wechat import SmsChallenge, WeChatApp


class MerchantRepository(Protocol):
    async def get(self, merchant_id: str) -> Merchant | None: ...

    async def by_code(self, code: str) -> Merchant | None:
        """The code identifies a merchant: the one look-up not filtered by a merchant id."""

    async def add(self, merchant: Merchant) -> bool:
        """False when a merchant with its code exists."""

    async def save(self, merchant: Merchant) -> None:
        """Writes the change on the version it was read at; raises StaleVersion when
        another writer came first."""


class ApiKeyRepository(Protocol):
    async def add(self, key: ApiKey) -> bool:
        """False when the key (its hash) is bound already."""

    async def by_hash(self, key_hash: str) -> ApiKey | None: ...

    async def get(self, merchant_id: str, key_id: str) -> ApiKey | None: ...

    async def page(self, merchant_id: str, channel: str, include_disabled: bool, after_id: str,
                   limit: int) -> list[ApiKey]:
        """Newest first (ids below `after_id` when given); `channel` empty for all."""

    async def disable(self, merchant_id: str, key_id: str) -> bool:
        """Marks the key disabled; False when it was disabled already (or is unknown)."""


class StaffRepository(Protocol):
    async def by_username(self, merchant_id: str, username: str) -> StaffUser | None: ...

    async def get(self, merchant_id: str, staff_id: str) -> StaffUser | None: ...

    async def page(self, merchant_id: str, username_prefix: str, include_disabled: bool, after_id: str,
                   limit: int) -> list[StaffUser]:
        """Newest first (ids below `after_id` when given)."""

    async def add(self, staff: StaffUser) -> bool:
        """False when the merchant has a user of that name."""

    async def save(self, staff: StaffUser) -> None:
        """As MerchantRepository.save; the token version moves in the same write."""

    async def subject(self, merchant_id: str, staff_id: str) -> Subject | None: ...

    async def subjects(self, merchant_id: str, staff_ids: list[str]) -> dict[str, Subject]: ...

    async def bump_token_version(self, merchant_id: str, staff_id: str) -> None: ...


class MemberRepository(Protocol):
    async def get(self, merchant_id: str, member_id: str) -> Member | None: ...

    async def add(self, member: Member) -> bool:
        """Stores a new member with the events it recorded; False when it exists."""

    async def subject(self, merchant_id: str, member_id: str) -> Subject | None: ...

    async def subjects(self, merchant_id: str, member_ids: list[str]) -> dict[str, Subject]: ...

    async def bump_token_version(self, merchant_id: str, member_id: str) -> None: ...

    async def set_phone_suffix(self, merchant_id: str, member_id: str, suffix: str) -> None:
        """Stores the last four digits of the member's verified phone beside the member, for
        the staff's search by phone suffix. Writing the same digits again changes nothing."""


class IdentityRepository(Protocol):
    """Which member a provider's ids belong to: the unionid (one per person and merchant)
    and each channel's openid. Links are unique; linking twice keeps the first."""

    async def member_of_union(self, merchant_id: str, unionid: str) -> str | None: ...

    async def member_of_channel(self, merchant_id: str, channel: str, openid: str) -> str | None: ...

    async def link_union(self, merchant_id: str, unionid: str, member_id: str) -> bool:
        """False when the unionid is linked already."""

    async def link_channel(self, merchant_id: str, channel: str, openid: str, member_id: str) -> bool:
        """False when the openid is linked already."""

    async def unionid_of(self, merchant_id: str, member_id: str) -> str | None:
        """The unionid linked to the member, if any."""
        ...

    async def take_over_union(self, merchant_id: str, unionid: str, from_member_id: str, to_member_id: str) -> bool:
        """Points the unionid at another member, only while it points at `from_member_id`
        (one conditional update); False when it does not any more."""
        ...

    async def take_over_channel(self, merchant_id: str, channel: str, openid: str, from_member_id: str,
                                to_member_id: str) -> bool:
        """The same for a channel's openid."""
        ...

    async def channels_of(self, merchant_id: str, member_id: str) -> list[str]:
        """The channels the member has logged in on, sorted."""

    async def openid_of(self, merchant_id: str, member_id: str, channel: str) -> str | None:
        """The member's openid in the channel, the newest when the member has several
        there (a sandbox one, then WeChat's); None when the member has none."""


class FactsMarks(Protocol):
    async def mark(self, merchant_id: str, member_id: str) -> None:
        """Marks the member's segment facts to be derived again by the facts job's next run
        (their growth changed, so their tier may have)."""
        ...


class PointsLedger(Protocol):
    async def account(self, merchant_id: str, member_id: str) -> PointsAccount:
        """The member's account with its growth so far (one read)."""

    async def entries(self, merchant_id: str, member_id: str) -> list[PointsEntry]:
        """The whole ledger, newest first."""

    async def save(self, account: PointsAccount) -> bool:
        """Appends the account's new entries with the events it recorded; False when an
        entry's source was already applied (nothing is written then)."""

    # ---- the points account (domain/points_account.py) ---------------------------------
    async def book(self, merchant_id: str, member_id: str) -> PointsBook | None:
        """The member's account as stored; None when it has none yet."""

    async def opening(self, merchant_id: str, member_id: str, time_zone: str, expiry_years: int) -> PointsBook:
        """The account a member without one starts with: what the ledger holds from
        before accounts (orders' earnings) and their causes as applied."""

    async def move(self, merchant_id: str, movement: Movement, entry: PointsEntry, channel: str = "",
                   opening: PointsBook | None = None) -> bool:
        """One conditional write: the movement's counters, lots, cause and events when
        every guard still holds (False: nothing written, read again); then its ledger
        entry. With `opening`, the account is stored first (if no one did meanwhile)."""

    async def open(self, book: PointsBook) -> None:
        """Stores an opening account unless the member has one already."""

    async def set_unfreeze(self, merchant_id: str, member_id: str, order_id: str, at_ms: int) -> bool:
        """When the order's frozen points unfreeze; False when none are frozen for it."""

    async def claim(self, due_field: str, now_ms: int) -> tuple[str, str] | None:
        """(merchant, member) of one account whose `due_field` has come, leased to this
        caller for a while so other replicas take other accounts; None when none is due."""

    async def set_due(self, merchant_id: str, member_id: str, due_field: str, seen: int | None,
                      next_ms: int) -> None:
        """Moves a due time on unless it changed since it was read as `seen`."""

    async def due_of(self, merchant_id: str, member_id: str) -> dict: ...

    async def entry(self, merchant_id: str, cause: Cause) -> PointsEntry | None:
        """The ledger entry of a cause."""

    async def page(self, merchant_id: str, member_id: str, before_id: str, limit: int) -> list[PointsEntry]:
        """Newest first, ids below `before_id` when given."""

    async def entries_of_order(self, merchant_id: str, member_id: str, order_id: str) -> list[PointsEntry]: ...

    async def repair(self, now_ms: int, limit: int = 100) -> int:
        """Stores ledger entries accounts have owed for a while; how many."""


class RefreshTokens(Protocol):
    async def add(self, token: RefreshToken) -> None: ...

    async def end(self, merchant_id: str, token_id: str, subject_id: str, state: str) -> bool:
        """ACTIVE → `state`; False when the token is unknown, someone else's or already ended."""


class LoginAttempts(Protocol):
    """Fixed-window counters of staff login attempts, shared by every replica."""

    async def take(self, counter_id: str, limit: int, expires_at: datetime) -> bool:
        """Counts one attempt unless the window already holds `limit`; False when it does."""

    async def give_back(self, counter_id: str) -> None: ...


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password: str, stored: str) -> bool: ...


class LoginProvider(Protocol):
    """An identity provider (WeChat, the sandbox) as the login use case calls it."""
    name: str

    async def exchange(self, code: str, channel: str) -> ProviderIdentity:
        """Raises InvalidLoginCode when the provider does not accept the code."""


# ---- address book ---------------------------------------------------------------------

class AddressBookRepository(Protocol):
    """One book per member of a merchant (unique), every change one conditional write."""

    async def of(self, merchant_id: str, member_id: str) -> AddressBook | None: ...

    async def save(self, book: AddressBook) -> None:
        """Stores a new book (version 0) or the change on the version it was read at;
        raises StaleVersion when another writer came first (for a new book: created it)."""


# ---- WeChat identity: app credentials, WeChat's API, phones and SMS codes ---------------

class WeChatApps(Protocol):
    """Merchants' WeChat apps per channel; the secret is sealed at rest."""

    async def get(self, merchant_id: str, channel: str) -> WeChatApp | None: ...

    async def put(self, app: WeChatApp, changed_by: str) -> None: ...

    async def appids(self, merchant_id: str) -> dict[str, str]:
        """channel → appid of every app the merchant has (no secrets opened)."""


class WeChatApi(Protocol):
    """WeChat's identity endpoints. Raise InvalidLoginCode when WeChat refuses the code
    (invalid, used or expired), Unavailable when WeChat cannot answer."""

    async def code2session(self, app: WeChatApp, code: str) -> ProviderIdentity: ...

    async def web_authorise(self, app: WeChatApp, code: str) -> ProviderIdentity: ...

    async def phone_number(self, app: WeChatApp, code: str) -> str: ...


class PhoneBook(Protocol):
    """Verified phones: one member per phone and merchant, sealed at rest."""

    async def member_of(self, merchant_id: str, phone: str) -> str | None: ...

    async def phone_of(self, merchant_id: str, member_id: str) -> str:
        """The member's verified phone, opened; "" when none."""

    async def bind(self, merchant_id: str, phone: str, member_id: str) -> bool:
        """False when the phone belongs to a member already (nothing written)."""

    async def phones_of(self, merchant_id: str, member_ids: list[str]) -> dict[str, str]:
        """member id → verified phone, opened, of those of the members who have one (one read)."""


class SmsChallenges(Protocol):
    async def add(self, challenge: SmsChallenge) -> None: ...

    async def latest(self, merchant_id: str, member_id: str, phone_index: str) -> SmsChallenge | None: ...

    async def save(self, challenge: SmsChallenge) -> None: ...


class SmsSender(Protocol):
    async def send(self, merchant_id: str, phone: str, text: str) -> None: ...


class AuditLog(Protocol):
    """Who changed what among staff users, channel keys and settings; append-only."""

    async def add(self, entry: AuditEntry) -> None: ...

    async def page(self, merchant_id: str, action: str, actor_id: str, target_id: str, after_id: str,
                   limit: int) -> list[AuditEntry]:
        """Newest first (ids below `after_id` when given); empty filters match all."""


class MemberDirectory(Protocol):
    """The staff's search over a merchant's members."""

    async def page(self, merchant_id: str, where: MemberFilter, after_id: str,
                   limit: int) -> list[tuple[Member, int]]:
        """Members newest first (ids below `after_id` when given) with their growth."""


# ---- backfills: documents stored before a field was kept -------------------------------

class BackfillSource(Protocol):
    """One backfill's walk over its documents (all merchants), in id order."""
    name: str

    async def step(self, after_id: str, limit: int) -> tuple[str, int]:
        """Brings the next `limit` documents with ids above `after_id` up to date, each by a
        write safe to repeat; (the last id looked at, "" when none, and how many)."""


class BackfillProgress(Protocol):
    """Each backfill's checkpoint and lease, shared by every replica."""

    async def claim(self, name: str, holder: str, now: datetime, until: datetime) -> str | None:
        """Takes (or renews) the backfill's lease for `holder` until `until` and returns its
        checkpoint ("" at the start); None when it is done or another holder's lease runs."""

    async def advance(self, name: str, holder: str, after_id: str, done: bool, until: datetime) -> bool:
        """Stores the checkpoint (and done) and renews the lease; False when `holder` no
        longer holds the lease (nothing written)."""
