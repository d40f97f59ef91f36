"""The member's address book (me/addresses) and the order service's read of a shipping
address. Phones are sealed for the merchant before they reach the book, and only the
masked form is ever shown; the full number goes to the order service alone."""
from __future__ import annotations

import re
from dataclasses import dataclass

from services.member.application.ports import AddressBookRepository
from services.member.domain.addresses import Address, AddressBook, AddressInput, creation_fingerprint
from services.member.domain.regions import UnknownRegion, resolve
from siyu_kit import context
from siyu_kit.errors import Violations
from siyu_kit.ids import is_id, new_id
from siyu_kit.logging import mask_phone
from siyu_kit.protos import utcnow
from siyu_kit.retry import on_conflict
from siyu_kit.sealing import Sealer

RECIPIENT_MAX = 32
DETAIL_MAX = 120
PHONE = re.compile(r"^1[3-9][0-9]{9}$")
KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CODE = re.compile(r"^[0-9]{6}$")


@dataclass(frozen=True)
class AddressForm:
    """What the member sends for a new or edited address."""
    recipient: str
    phone: str
    province_code: str
    city_code: str
    district_code: str
    detail: str


@dataclass(frozen=True)
class AddressView:
    address: Address
    is_default: bool


@dataclass(frozen=True)
class ShippingAddress:
    view: AddressView
    phone: str


def _now_ms():
    """Now to the millisecond, as the book stores it, so the answer to a creation shows the
    time every later read shows."""
    now = utcnow()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class AddressBooks:
    def __init__(self, books: AddressBookRepository, sealer: Sealer, fingerprint_key: bytes):
        self.books = books
        self.sealer = sealer
        # Keys the fingerprints of creation requests (they hold the phone): the look-up key.
        self.fingerprint_key = fingerprint_key

    # ---- reading ----

    async def _book(self, merchant_id: str, member_id: str) -> AddressBook:
        book = await self.books.of(merchant_id, member_id)
        return book or AddressBook.empty(new_id("adb"), merchant_id, member_id)

    @staticmethod
    def _view(book: AddressBook, address: Address) -> AddressView:
        return AddressView(address, address.id == book.default_id)

    async def list(self) -> list[AddressView]:
        ctx = context.current()
        member_id = ctx.require_member()
        book = await self._book(ctx.merchant_id, member_id)
        return [self._view(book, a) for a in book.listed()]

    async def shipping(self, member_id: str, address_id: str) -> ShippingAddress:
        """The order service's read: the address (the default when none is named) with
        the full phone number."""
        merchant_id = context.current().require_merchant()
        v = Violations()
        v.check(is_id(member_id, "mem"), "member_id", "must be a mem_ id")
        v.check(not address_id or is_id(address_id, "adr"), "address_id", "must be an adr_ id or empty")
        v.raise_if_any()
        book = await self._book(merchant_id, member_id)
        address = book.find(address_id) if address_id else book.default()
        return ShippingAddress(self._view(book, address), self.sealer.open(address.phone_sealed, merchant_id))

    # ---- changing ----

    def _checked(self, merchant_id: str, form: AddressForm, v: Violations, *, phone_required: bool) -> AddressInput:
        recipient, detail = form.recipient.strip(), form.detail.strip()
        v.check(bool(recipient), "recipient", "required")
        v.check(len(recipient) <= RECIPIENT_MAX, "recipient", f"at most {RECIPIENT_MAX} characters")
        v.check(bool(detail), "detail", "required")
        v.check(len(detail) <= DETAIL_MAX, "detail", f"at most {DETAIL_MAX} characters")
        if form.phone or phone_required:
            v.check(bool(PHONE.match(form.phone)), "phone", "an 11-digit mobile number")
        region = None
        shapes = [v.check(bool(CODE.match(code)), name, "a six-digit GB/T 2260 region code")
                  for name, code in (("province_code", form.province_code), ("city_code", form.city_code),
                                     ("district_code", form.district_code))]
        if all(shapes):
            try:
                region = resolve(form.province_code, form.city_code, form.district_code)
            except UnknownRegion as error:
                v.add(error.field, str(error))
        v.raise_if_any()
        sealed = self.sealer.seal(form.phone, merchant_id) if form.phone else ""
        return AddressInput(recipient=recipient, phone_sealed=sealed,
                            phone_masked=mask_phone(form.phone) if form.phone else "", region=region, detail=detail)

    async def create(self, idempotency_key: str, form: AddressForm, make_default: bool) -> tuple[AddressView, bool]:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(bool(KEY.match(idempotency_key)), "idempotency_key", "1 to 64 characters of A-Z, a-z, 0-9, _ or -")
        data = self._checked(ctx.merchant_id, form, v, phone_required=True)
        fingerprint = creation_fingerprint(self.fingerprint_key, data.recipient, form.phone, form.province_code,
                                           form.city_code, form.district_code, data.detail, make_default)

        async def attempt() -> tuple[AddressView, bool]:
            book = await self._book(ctx.merchant_id, member_id)
            earlier = book.replay(idempotency_key, fingerprint)
            if earlier is not None:
                return self._view(book, earlier), False
            address = book.add(new_id("adr"), idempotency_key, data, make_default, _now_ms(), fingerprint)
            await self.books.save(book)
            return self._view(book, address), True

        return await on_conflict(attempt, gave_up="the address book kept changing; retry")

    async def update(self, address_id: str, form: AddressForm, expected_version: int) -> AddressView:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(is_id(address_id, "adr"), "address_id", "must be an adr_ id")
        v.check(expected_version >= 0, "expected_version", "at least 0")
        data = self._checked(ctx.merchant_id, form, v, phone_required=False)

        async def attempt() -> AddressView:
            book = await self._book(ctx.merchant_id, member_id)
            address = book.edit(address_id, data, expected_version)
            await self.books.save(book)
            return self._view(book, address)

        return await on_conflict(attempt, gave_up="the address book kept changing; retry")

    async def delete(self, address_id: str) -> str:
        """The default address id after the deletion ("" when the book is empty)."""
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(is_id(address_id, "adr"), "address_id", "must be an adr_ id")
        v.raise_if_any()

        async def attempt() -> str:
            book = await self._book(ctx.merchant_id, member_id)
            book.remove(address_id)
            await self.books.save(book)
            return book.default_id

        return await on_conflict(attempt, gave_up="the address book kept changing; retry")

    async def set_default(self, address_id: str) -> AddressView:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(is_id(address_id, "adr"), "address_id", "must be an adr_ id")
        v.raise_if_any()

        async def attempt() -> AddressView:
            book = await self._book(ctx.merchant_id, member_id)
            if book.default_id == address_id:  # already the default: nothing to write
                return self._view(book, book.find(address_id))
            address = book.make_default(address_id)
            await self.books.save(book)
            return self._view(book, address)

        return await on_conflict(attempt, gave_up="the address book kept changing; retry")
