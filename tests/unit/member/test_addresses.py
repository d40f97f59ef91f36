"""The address book: region codes checked against the shipped table, at most 20
addresses, one default, creation keys, phones sealed and shown masked."""
from __future__ import annotations

import pytest

from services.member.application.addresses import AddressBooks, AddressForm
from services.member.domain import regions
from services.member.domain.addresses import MAX_ADDRESSES
from siyu_kit.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound
from siyu_kit.ids import new_id
from siyu_kit.sealing import Sealer, new_key
from tests.fakes.member import FakeAddressBooks, caller

MERCHANT = "mch_01J00000000000000000000000"
HOME = AddressForm(recipient="张三", phone="13812348000", province_code="310000", city_code="310100",
                   district_code="310101", detail="南京东路 1 号 101 室")


def _form(**changes) -> AddressForm:
    return AddressForm(**{**HOME.__dict__, **changes})


@pytest.fixture
def books():
    return FakeAddressBooks()


@pytest.fixture
def sealer():
    return Sealer.from_setting(new_key())


@pytest.fixture
def book_of(books, sealer):
    return AddressBooks(books, sealer, b"f" * 32)


@pytest.fixture
def member():
    return new_id("mem")


def _violations(error: InvalidArgument) -> dict[str, str]:
    return {v.field: v.description for v in error.violations}


# ---- regions --------------------------------------------------------------------------

def test_region_path_names_province_city_and_district():
    path = regions.region_path("440305")
    assert (path.province.name, path.city.name, path.district.name) == ("广东省", "深圳市", "南山区")
    assert (path.province.code, path.city.code) == ("440000", "440300")
    assert not path.remote


def test_remote_provinces_are_data():
    assert regions.region_path("650102").remote  # Urumqi, Xinjiang
    assert regions.region_path("540102").remote  # Lhasa, Tibet
    assert {p[:2] for p in regions.REMOTE_PROVINCES} == {"15", "46", "54", "62", "63", "64", "65"}


def test_a_city_without_districts_is_its_own_district():
    assert regions.resolve("440000", "441900", "441900").district.name == "东莞市"
    with pytest.raises(regions.UnknownRegion):
        regions.resolve("440000", "440300", "440300")  # Shenzhen has districts


def test_municipalities_show_their_own_name_for_the_city_level():
    assert regions.region_path("110105").city.name == "北京市"


@pytest.mark.parametrize("codes, field", [
    (("999999", "310100", "310101"), "province_code"),
    (("310000", "310100", "310199"), "district_code"),
    (("310100", "310100", "310101"), "province_code"),
    (("440000", "310100", "310101"), "city_code"),
    (("310000", "310100", "440305"), "district_code"),
])
def test_unknown_or_misplaced_codes_name_their_field(codes, field):
    with pytest.raises(regions.UnknownRegion) as raised:
        regions.resolve(*codes)
    assert raised.value.field == field


# ---- the book ---------------------------------------------------------------------------

async def test_the_first_address_is_the_default_and_the_phone_is_sealed(book_of, books, sealer, member):
    with caller(MERCHANT, member_id=member):
        view, created = await book_of.create("k1", HOME, False)
    assert created and view.is_default
    a = view.address
    assert (a.phone_masked, a.region.city.name, a.region.district.name) == ("138****8000", "上海市", "黄浦区")
    stored = next(iter(books.items.values())).addresses[0]
    assert "13812348000" not in repr(stored)
    assert sealer.open(stored.phone_sealed, MERCHANT) == "13812348000"


async def test_the_creation_key_adds_once(book_of, member):
    with caller(MERCHANT, member_id=member):
        first, _ = await book_of.create("k1", HOME, False)
        again, created = await book_of.create("k1", HOME, False)
        assert not created and again.address.id == first.address.id
        assert len(await book_of.list()) == 1


async def test_a_creation_key_used_for_another_address_is_refused(book_of, books, member):
    with caller(MERCHANT, member_id=member):
        first, _ = await book_of.create("k1", HOME, False)
        saves = books.saves
        for form, make_default in ((_form(recipient="李四"), False), (_form(phone="13900001111"), False),
                                   (_form(district_code="310104"), False), (_form(detail="别处 2 号"), False),
                                   (HOME, True)):
            with pytest.raises(AlreadyExists) as reused:
                await book_of.create("k1", form, make_default)
            assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
        # the same request, even spaced differently, is the same request
        again, created = await book_of.create("k1", _form(recipient=" 张三 "), False)
        assert not created and again.address.id == first.address.id
        assert books.saves == saves and len(await book_of.list()) == 1


async def test_keys_stored_before_fingerprints_were_kept_replay_as_before(book_of, books, member):
    with caller(MERCHANT, member_id=member):
        first, _ = await book_of.create("k1", HOME, False)
        book = next(iter(books.items.values()))
        book.keys = [(k, a, "") for k, a, _ in book.keys]
        again, created = await book_of.create("k1", _form(recipient="李四"), False)
        assert not created and again.address.id == first.address.id


def test_the_creation_fingerprint_is_keyed_and_hides_the_phone():
    from services.member.domain.addresses import creation_fingerprint
    args = ("张三", "13812348000", "310000", "310100", "310101", "南京东路 1 号", False)
    assert creation_fingerprint(b"a" * 32, *args) == creation_fingerprint(b"a" * 32, *args)
    assert creation_fingerprint(b"a" * 32, *args) != creation_fingerprint(b"b" * 32, *args)
    assert "13812348000" not in creation_fingerprint(b"a" * 32, *args)


async def test_at_most_twenty_addresses(book_of, member):
    with caller(MERCHANT, member_id=member):
        for i in range(MAX_ADDRESSES):
            await book_of.create(f"k{i}", HOME, False)
        with pytest.raises(FailedPrecondition) as raised:
            await book_of.create("one-more", HOME, False)
        assert raised.value.reason == "ADDRESS_BOOK_FULL"
        assert len(await book_of.list()) == MAX_ADDRESSES


async def test_bad_input_names_every_field_and_writes_nothing(book_of, books, member):
    with caller(MERCHANT, member_id=member):
        with pytest.raises(InvalidArgument) as raised:
            await book_of.create("", _form(recipient=" ", phone="12345", detail="", province_code="31"), False)
    assert set(_violations(raised.value)) == {"idempotency_key", "recipient", "phone", "detail", "province_code"}
    assert books.saves == 0


async def test_an_unknown_region_is_a_field_violation(book_of, books, member):
    with caller(MERCHANT, member_id=member):
        with pytest.raises(InvalidArgument) as raised:
            await book_of.create("k1", _form(district_code="440305"), False)
    assert list(_violations(raised.value)) == ["district_code"]
    assert books.saves == 0


async def test_set_default_and_deleting_the_default_picks_the_newest(book_of, member):
    with caller(MERCHANT, member_id=member):
        a, _ = await book_of.create("a", HOME, False)
        b, _ = await book_of.create("b", HOME, False)
        c, _ = await book_of.create("c", HOME, False)
        assert (await book_of.list())[0].address.id == a.address.id
        assert (await book_of.set_default(b.address.id)).is_default
        listed = await book_of.list()
        assert [v.address.id for v in listed] == [b.address.id, c.address.id, a.address.id]
        assert [v.is_default for v in listed] == [True, False, False]
        assert await book_of.delete(b.address.id) == c.address.id
        assert await book_of.delete(c.address.id) == a.address.id
        assert await book_of.delete(a.address.id) == ""
        with pytest.raises(NotFound) as raised:
            await book_of.delete(a.address.id)
        assert raised.value.reason == "ADDRESS_NOT_FOUND"


async def test_a_new_address_can_take_the_default(book_of, member):
    with caller(MERCHANT, member_id=member):
        await book_of.create("a", HOME, False)
        b, _ = await book_of.create("b", HOME, True)
        assert b.is_default
        assert [v.is_default for v in await book_of.list()] == [True, False]


async def test_edit_keeps_the_phone_unless_a_new_one_is_sent_and_checks_the_version(book_of, sealer, member):
    with caller(MERCHANT, member_id=member):
        a, _ = await book_of.create("a", HOME, False)
        edited = await book_of.update(a.address.id, _form(phone="", detail="新地址"), 1)
        assert (edited.address.detail, edited.address.phone_masked, edited.address.version) == ("新地址", "138****8000", 2)
        with pytest.raises(Conflict) as raised:
            await book_of.update(a.address.id, _form(), 1)
        assert raised.value.reason == "VERSION_CONFLICT"
        edited = await book_of.update(a.address.id, _form(phone="13900001111"), 0)
        assert edited.address.phone_masked == "139****1111"


async def test_another_member_or_merchant_sees_nothing(book_of, member):
    with caller(MERCHANT, member_id=member):
        a, _ = await book_of.create("a", HOME, False)
    with caller(MERCHANT, member_id=new_id("mem")):
        assert await book_of.list() == []
        with pytest.raises(NotFound):
            await book_of.update(a.address.id, HOME, 0)
        with pytest.raises(NotFound):
            await book_of.delete(a.address.id)
        with pytest.raises(NotFound):
            await book_of.set_default(a.address.id)
    with caller("mch_01J00000000000000000000001", member_id=member):
        assert await book_of.list() == []


async def test_the_order_service_reads_the_default_or_a_named_address_with_the_full_phone(book_of, member):
    with caller(MERCHANT, member_id=member):
        a, _ = await book_of.create("a", HOME, False)
        b, _ = await book_of.create("b", _form(phone="13900001111"), False)
    with caller(MERCHANT, service="order"):
        found = await book_of.shipping(member, "")
        assert (found.view.address.id, found.phone) == (a.address.id, "13812348000")
        assert (await book_of.shipping(member, b.address.id)).phone == "13900001111"
        with pytest.raises(NotFound) as raised:
            await book_of.shipping(new_id("mem"), "")
        assert raised.value.reason == "ADDRESS_NOT_FOUND"


async def test_a_lost_race_is_retried_on_a_fresh_read(book_of, books, member):
    with caller(MERCHANT, member_id=member):
        await book_of.create("a", HOME, False)
        books.writes_by_others = 1
        await book_of.create("b", HOME, False)
        assert len(await book_of.list()) == 2


async def test_a_sealed_phone_does_not_open_for_another_merchant(sealer):
    sealed = sealer.seal("13812348000", MERCHANT)
    with pytest.raises(ValueError):
        sealer.open(sealed, "mch_other")
