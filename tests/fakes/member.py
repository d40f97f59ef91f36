"""In-memory stand-ins for the member service's ports (services.member.application.ports)."""
from __future__ import annotations

import copy
import dataclasses
from datetime import datetime, timedelta

from siyu_kit.ids import new_id

from tests.fakes.callers import caller  # noqa: F401 - the tests of this service import it from here
from tests.fakes.store import VersionedStore

from services.member.domain.admin import AuditEntry
from services.member.domain.identity import ProviderIdentity, SandboxProvider
from services.member.domain.members import Member
from services.member.domain.merchants import ApiKey, Merchant, StaffUser
from services.member.domain.points import PointsAccount, PointsEarned, PointsEntry, PointsMoved
from services.member.domain.points_account import NEVER_KEY, FrozenLot, Movement, PointsBook
from services.member.domain.sessions import ACTIVE, RefreshToken, Subject




class FakeMerchants(VersionedStore):
    items: dict[str, Merchant]

    async def get(self, merchant_id: str) -> Merchant | None:
        return copy.deepcopy(self.items.get(merchant_id))

    async def by_code(self, code: str) -> Merchant | None:
        return next((copy.deepcopy(m) for m in self.items.values() if m.code == code), None)

    async def add(self, merchant: Merchant) -> bool:
        if await self.by_code(merchant.code) is not None:
            return False
        self.items[merchant.id] = copy.deepcopy(merchant)
        return True

    async def save(self, merchant: Merchant) -> None:
        self._compare_and_set(merchant)


class FakeApiKeys:
    def __init__(self):
        self.items: dict[str, ApiKey] = {}

    async def add(self, key: ApiKey) -> bool:
        if key.key_hash in self.items:
            return False
        self.items[key.key_hash] = key
        return True

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        return self.items.get(key_hash)

    async def get(self, merchant_id: str, key_id: str) -> ApiKey | None:
        return next((k for k in self.items.values() if (k.merchant_id, k.id) == (merchant_id, key_id)), None)

    async def page(self, merchant_id: str, channel: str, include_disabled: bool, after_id: str,
                   limit: int) -> list[ApiKey]:
        rows = sorted((k for k in self.items.values() if k.merchant_id == merchant_id
                       and (not channel or k.channel == channel) and (include_disabled or not k.disabled)
                       and (not after_id or k.id < after_id)), key=lambda k: k.id, reverse=True)
        return rows[:limit]

    async def disable(self, merchant_id: str, key_id: str) -> bool:
        key = await self.get(merchant_id, key_id)
        if key is None or key.disabled:
            return False
        self.items[key.key_hash] = dataclasses.replace(key, disabled=True)
        return True


class FakeStaff(VersionedStore):
    items: dict[str, StaffUser]

    async def by_username(self, merchant_id: str, username: str) -> StaffUser | None:
        return next((copy.deepcopy(s) for s in self.items.values()
                     if (s.merchant_id, s.username) == (merchant_id, username)), None)

    async def get(self, merchant_id: str, staff_id: str) -> StaffUser | None:
        return copy.deepcopy(self._mine(merchant_id, staff_id))

    async def page(self, merchant_id: str, username_prefix: str, include_disabled: bool, after_id: str,
                   limit: int) -> list[StaffUser]:
        rows = sorted((s for s in self.items.values() if s.merchant_id == merchant_id
                       and s.username.startswith(username_prefix) and (include_disabled or not s.disabled)
                       and (not after_id or s.id < after_id)), key=lambda s: s.id, reverse=True)
        return copy.deepcopy(rows[:limit])

    async def add(self, staff: StaffUser) -> bool:
        if await self.by_username(staff.merchant_id, staff.username) is not None:
            return False
        self.items[staff.id] = copy.deepcopy(staff)
        return True

    async def save(self, staff: StaffUser) -> None:
        self._compare_and_set(staff)

    def _mine(self, merchant_id: str, staff_id: str) -> StaffUser | None:
        staff = self.items.get(staff_id)
        return staff if staff is not None and staff.merchant_id == merchant_id else None

    async def subject(self, merchant_id: str, staff_id: str) -> Subject | None:
        staff = self._mine(merchant_id, staff_id)
        return Subject(staff.token_version, not staff.disabled, staff.roles) if staff else None

    async def subjects(self, merchant_id: str, staff_ids: list[str]) -> dict[str, Subject]:
        return {i: Subject(s.token_version, not s.disabled) for i in staff_ids if (s := self._mine(merchant_id, i))}

    async def bump_token_version(self, merchant_id: str, staff_id: str) -> None:
        if staff := self._mine(merchant_id, staff_id):
            staff.token_version += 1


class FakeMembers:
    """Members by id; `events` keeps the domain events stored with each new member."""

    def __init__(self):
        self.items: dict[str, Member] = {}
        self.events: list = []
        self.suffixes: dict[str, str] = {}  # member id → stored phone suffix
        self.erasing: set[str] = set()  # members being (or that were) erased: inactive subjects

    def _mine(self, merchant_id: str, member_id: str) -> Member | None:
        member = self.items.get(member_id)
        return member if member is not None and member.merchant_id == merchant_id else None

    async def get(self, merchant_id: str, member_id: str) -> Member | None:
        return copy.deepcopy(self._mine(merchant_id, member_id))

    async def add(self, member: Member) -> bool:
        if member.id in self.items:
            return False
        self.events.extend(member.pull_events())
        self.items[member.id] = copy.deepcopy(member)
        return True

    async def subject(self, merchant_id: str, member_id: str) -> Subject | None:
        member = self._mine(merchant_id, member_id)
        return Subject(member.token_version, member_id not in self.erasing) if member else None

    async def subjects(self, merchant_id: str, member_ids: list[str]) -> dict[str, Subject]:
        return {i: Subject(m.token_version, i not in self.erasing) for i in member_ids
                if (m := self._mine(merchant_id, i))}

    async def bump_token_version(self, merchant_id: str, member_id: str) -> None:
        if member := self._mine(merchant_id, member_id):
            member.token_version += 1

    async def set_phone_suffix(self, merchant_id: str, member_id: str, suffix: str) -> None:
        if self._mine(merchant_id, member_id):
            self.suffixes[member_id] = suffix


class FakeIdentities:
    def __init__(self):
        self.unions: dict[tuple[str, str], str] = {}
        self.channels: dict[tuple[str, str, str], str] = {}

    async def member_of_union(self, merchant_id: str, unionid: str) -> str | None:
        return self.unions.get((merchant_id, unionid))

    async def member_of_channel(self, merchant_id: str, channel: str, openid: str) -> str | None:
        return self.channels.get((merchant_id, channel, openid))

    async def link_union(self, merchant_id: str, unionid: str, member_id: str) -> bool:
        return self.unions.setdefault((merchant_id, unionid), member_id) == member_id

    async def link_channel(self, merchant_id: str, channel: str, openid: str, member_id: str) -> bool:
        return self.channels.setdefault((merchant_id, channel, openid), member_id) == member_id

    async def unionid_of(self, merchant_id: str, member_id: str) -> str | None:
        return next((u for (m, u), mem in self.unions.items() if (m, mem) == (merchant_id, member_id)), None)

    async def take_over_union(self, merchant_id: str, unionid: str, from_member_id: str, to_member_id: str) -> bool:
        if self.unions.get((merchant_id, unionid)) != from_member_id:
            return False
        self.unions[(merchant_id, unionid)] = to_member_id
        return True

    async def take_over_channel(self, merchant_id: str, channel: str, openid: str, from_member_id: str,
                                to_member_id: str) -> bool:
        if self.channels.get((merchant_id, channel, openid)) != from_member_id:
            return False
        self.channels[(merchant_id, channel, openid)] = to_member_id
        return True

    async def channels_of(self, merchant_id: str, member_id: str) -> list[str]:
        return sorted({c for (m, c, _), mem in self.channels.items() if (m, mem) == (merchant_id, member_id)})

    async def openid_of(self, merchant_id: str, member_id: str, channel: str) -> str | None:
        # dicts keep insertion order: the last link is the newest
        found = [o for (m, c, o), mem in self.channels.items() if (m, c, mem) == (merchant_id, channel, member_id)]
        return found[-1] if found else None


class FakeLedger:
    """Entries in the order written, unique per cause (merchant, source, source id, kind);
    `events` keeps the domain events stored with them. Points accounts are kept as
    PointsBook copies and every movement's guards are checked as the store checks them
    (`PointsBook.admits`); `lose_moves` makes that many moves lose to another writer."""

    def __init__(self):
        self.rows: list[tuple[str, str, PointsEntry]] = []  # (merchant, member, entry)
        self.events: list = []
        self.books: dict[tuple[str, str], PointsBook] = {}
        self.unfreeze_due: dict[tuple[str, str], int] = {}
        self.expiry_due: dict[tuple[str, str], int] = {}
        self.leases: dict[tuple[str, str, str], int] = {}
        self.lose_moves = 0
        self.moves = 0

    async def account(self, merchant_id: str, member_id: str) -> PointsAccount:
        growth = sum(e.growth for m, mem, e in self.rows if (m, mem) == (merchant_id, member_id))
        return PointsAccount(id=member_id, merchant_id=merchant_id, version=0, growth=growth)

    async def entries(self, merchant_id: str, member_id: str) -> list[PointsEntry]:
        return [e for m, mem, e in reversed(self.rows) if (m, mem) == (merchant_id, member_id)]

    async def save(self, account: PointsAccount) -> bool:
        events = account.pull_events()
        entries, account.new_entries = account.new_entries, []
        taken = {(m, e.source, e.source_id, e.kind) for m, _, e in self.rows}
        if any((account.merchant_id, e.source, e.source_id, e.kind) in taken for e in entries):
            return False
        self.rows.extend((account.merchant_id, account.id, e) for e in entries)
        self.events.extend(events)
        return True

    def add(self, merchant_id: str, member_id: str, points: int, growth: int = 0, frozen: bool = False,
            source: str = "ADJUSTMENT") -> None:
        """An entry written by something else than a paid order (and its account moved)."""
        entry = PointsEntry(new_id("pte"), source, new_id("src"), points, growth, frozen)
        self.rows.append((merchant_id, member_id, entry))
        book = self.books.setdefault((merchant_id, member_id), PointsBook(merchant_id, member_id))
        book.balance += points
        if frozen:
            book.frozen += points
            book.frozen_lots[entry.source_id] = FrozenLot(points, NEVER_KEY)
        else:
            book.available += points
            book.lots[NEVER_KEY] = book.lots.get(NEVER_KEY, 0) + points

    # ---- the points account ------------------------------------------------------------------
    async def book(self, merchant_id: str, member_id: str) -> PointsBook | None:
        book = self.books.get((merchant_id, member_id))
        return copy.deepcopy(book) if book else None

    async def opening(self, merchant_id: str, member_id: str, time_zone: str, expiry_years: int) -> PointsBook:
        return PointsBook(merchant_id, member_id)

    async def open(self, book: PointsBook) -> None:
        self.books.setdefault((book.merchant_id, book.member_id), copy.deepcopy(book))

    async def move(self, merchant_id: str, movement: Movement, entry: PointsEntry, channel: str = "",
                   opening: PointsBook | None = None) -> bool:
        if opening is not None:
            await self.open(opening)
        key = (merchant_id, movement.member_id)
        book = self.books[key]
        if self.lose_moves:
            self.lose_moves -= 1
            return False
        if not book.admits(movement):
            return False
        book.apply(movement)
        self.moves += 1
        self.rows.append((merchant_id, movement.member_id, entry))
        kind = PointsEarned if entry.kind == "EARN" else PointsMoved
        self.events.append(kind(member_id=movement.member_id, entry=entry, channel=channel))
        if movement.due_ms:
            self.expiry_due[key] = min(self.expiry_due.get(key, movement.due_ms), movement.due_ms)
        return True

    async def set_unfreeze(self, merchant_id: str, member_id: str, order_id: str, at_ms: int) -> bool:
        book = self.books.get((merchant_id, member_id))
        if book is None or order_id not in book.frozen_lots:
            return False
        book.frozen_lots[order_id] = dataclasses.replace(book.frozen_lots[order_id], unfreeze_ms=at_ms)
        key = (merchant_id, member_id)
        self.unfreeze_due[key] = min(self.unfreeze_due.get(key, at_ms), at_ms)
        return True

    def _dues(self, due_field: str) -> dict:
        return self.unfreeze_due if due_field == "unfreeze_due_ms" else self.expiry_due

    async def claim(self, due_field: str, now_ms: int) -> tuple[str, str] | None:
        for key, due in self._dues(due_field).items():
            lease = (due_field, *key)
            if due <= now_ms and self.leases.get(lease, 0) < now_ms:
                self.leases[lease] = now_ms + 30_000
                return key
        return None

    async def set_due(self, merchant_id: str, member_id: str, due_field: str, seen: int | None,
                      next_ms: int) -> None:
        dues = self._dues(due_field)
        if dues.get((merchant_id, member_id)) == seen:
            dues[(merchant_id, member_id)] = next_ms

    async def due_of(self, merchant_id: str, member_id: str) -> dict:
        key = (merchant_id, member_id)
        return {"unfreeze_due_ms": self.unfreeze_due.get(key), "due_ms": self.expiry_due.get(key)}

    async def entry(self, merchant_id: str, cause) -> PointsEntry | None:
        return next((e for m, _, e in self.rows if m == merchant_id and (e.source, e.source_id, e.kind) ==
                     (cause.source, cause.source_id, cause.kind)), None)

    async def page(self, merchant_id: str, member_id: str, before_id: str, limit: int) -> list[PointsEntry]:
        mine = sorted((e for m, mem, e in self.rows if (m, mem) == (merchant_id, member_id)),
                      key=lambda e: e.id, reverse=True)
        return [e for e in mine if not before_id or e.id < before_id][:limit]

    async def entries_of_order(self, merchant_id: str, member_id: str, order_id: str) -> list[PointsEntry]:
        return [e for m, mem, e in self.rows if (m, mem) == (merchant_id, member_id) and
                ((e.source, e.source_id) == ("ORDER", order_id) or (e.kind == "REVERSE" and e.order_id == order_id))]

    async def repair(self, now_ms: int, limit: int = 100) -> int:
        return 0


class FakeRefreshTokens:
    def __init__(self):
        self.items: dict[str, RefreshToken] = {}

    async def add(self, token: RefreshToken) -> None:
        self.items[token.id] = token

    async def end(self, merchant_id: str, token_id: str, subject_id: str, state: str) -> bool:
        token = self.items.get(token_id)
        if token is None or (token.merchant_id, token.subject_id, token.state) != (merchant_id, subject_id, ACTIVE):
            return False
        self.items[token_id] = RefreshToken(token.id, token.merchant_id, token.subject_id, token.created_at,
                                            token.expires_at, state)
        return True


class FakeLoginAttempts:
    def __init__(self):
        self.counters: dict[str, int] = {}
        self.expiries: dict[str, datetime] = {}

    async def take(self, counter_id: str, limit: int, expires_at: datetime) -> bool:
        if self.counters.get(counter_id, 0) >= limit:
            return False
        self.counters[counter_id] = self.counters.get(counter_id, 0) + 1
        self.expiries.setdefault(counter_id, expires_at)
        return True

    async def give_back(self, counter_id: str) -> None:
        if self.counters.get(counter_id, 0) > 0:
            self.counters[counter_id] -= 1


class FakePasswords:
    """Hashing without the cost: "plain$<password>". Never matches a real scrypt hash."""

    async def hash(self, password: str) -> str:
        return "plain$" + password

    async def verify(self, password: str, stored: str) -> bool:
        return stored == "plain$" + password


class FakeProvider:
    """The sandbox provider, called as the use cases call providers."""
    name = SandboxProvider.name

    def __init__(self):
        self.sandbox = SandboxProvider()

    async def exchange(self, code: str, channel: str) -> ProviderIdentity:
        return self.sandbox.exchange(code, channel)



class FakeAddressBooks(VersionedStore):
    """Address books by (merchant, member); a new book loses to one created meanwhile."""
    items: dict

    async def of(self, merchant_id: str, member_id: str):
        return next((copy.deepcopy(b) for b in self.items.values()
                     if (b.merchant_id, b.member_id) == (merchant_id, member_id)), None)

    async def save(self, book) -> None:
        from siyu_kit.aggregate import StaleVersion
        if book.version == 0:
            if await self.of(book.merchant_id, book.member_id) is not None:
                raise StaleVersion("an address book was created meanwhile")
            book.version = 1
            self.items[book.id] = copy.deepcopy(book)
            self.saves += 1
            return
        self._compare_and_set(book)

class FakeAuditLog:
    """Audit entries in the order written."""

    def __init__(self):
        self.entries: list[AuditEntry] = []

    async def add(self, entry: AuditEntry) -> None:
        self.entries.append(entry)

    async def page(self, merchant_id: str, action: str, actor_id: str, target_id: str, after_id: str,
                   limit: int) -> list[AuditEntry]:
        rows = [e for e in reversed(self.entries) if e.merchant_id == merchant_id
                and (not action or e.action == action) and (not actor_id or e.actor_id == actor_id)
                and (not target_id or e.target_id == target_id) and (not after_id or e.id < after_id)]
        return rows[:limit]


class FakeMemberDirectory:
    """The staff's member search over FakeMembers, with growth from FakeLedger and phone
    suffixes from the members' phones."""

    def __init__(self, members: "FakeMembers", ledger: "FakeLedger"):
        self.members = members
        self.ledger = ledger

    async def page(self, merchant_id: str, where, after_id: str, limit: int) -> list:
        from services.member.domain.admin import phone_suffix
        rows = []
        for member in sorted(self.members.items.values(), key=lambda m: m.id, reverse=True):
            growth = (await self.ledger.account(merchant_id, member.id)).growth
            if member.merchant_id != merchant_id or (after_id and member.id >= after_id):
                continue
            stored = self.members.suffixes.get(member.id) or phone_suffix(member.phone)
            if where.phone_suffix and stored != where.phone_suffix:
                continue
            if not member.nickname.startswith(where.nickname_prefix):
                continue
            if (where.growth_min is not None and growth < where.growth_min) or \
                    (where.growth_below is not None and growth >= where.growth_below):
                continue
            if (where.registered_from and member.created_at < where.registered_from) or \
                    (where.registered_before and member.created_at >= where.registered_before):
                continue
            rows.append((copy.deepcopy(member), growth))
        return rows[:limit]



class FakeBackfillProgress:
    """Backfills' checkpoints and leases, as the repository keeps them."""

    def __init__(self):
        self.items: dict[str, dict] = {}

    async def claim(self, name: str, holder: str, now: datetime, until: datetime) -> str | None:
        state = self.items.setdefault(name, {"after_id": "", "done": False, "holder": "",
                                             "lease_until": now - timedelta(days=1)})
        if state["done"] or (state["holder"] != holder and state["lease_until"] >= now):
            return None
        state.update(holder=holder, lease_until=until)
        return state["after_id"]

    async def advance(self, name: str, holder: str, after_id: str, done: bool, until: datetime) -> bool:
        state = self.items.get(name)
        if state is None or state["holder"] != holder:
            return False
        state.update(after_id=after_id, done=done, lease_until=until)
        return True


class FakeBackfillSource:
    """A walk over sorted ids; `repaired` counts each id's repairs (repeats included)."""

    def __init__(self, name: str, ids: list[str]):
        self.name = name
        self.ids = sorted(ids)
        self.repaired: dict[str, int] = {}
        self.fail_after: int | None = None  # raise after repairing this many in a step

    async def step(self, after_id: str, limit: int) -> tuple[str, int]:
        batch = [i for i in self.ids if i > after_id][:limit]
        for n, item in enumerate(batch):
            if self.fail_after is not None and n == self.fail_after:
                self.fail_after = None
                raise RuntimeError("the process stopped")
            self.repaired[item] = self.repaired.get(item, 0) + 1
        return (batch[-1] if batch else ""), len(batch)
