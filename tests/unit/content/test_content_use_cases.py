"""Content use cases over in-memory ports: personas, content lifecycle, funnels."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from siyu_kit.errors import (Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied,
                             Unauthenticated, Unavailable)
from siyu_kit.ids import new_id

from services.content.application.contents import ContentUseCases
from services.content.application.funnels import FunnelUseCases, OrderFact
from services.content.application.personas import PersonaUseCases
from services.content.domain import funnels
from services.content.domain.contents import ContentFields
from services.content.domain.funnels import Counters
from services.content.domain.personas import PersonaFields
from tests.fakes.content import FakeContents, FakeFunnels, FakePersonas, FakeProducts, caller

MERCHANT = "mch_A"
OTHER = "mch_B"
NOW = 1_700_000_000_000


class Clock:
    def __init__(self, now: int = NOW):
        self.now = now

    def __call__(self) -> int:
        self.now += 1000
        return self.now


@pytest.fixture
def world():
    class World:
        personas = FakePersonas()
        contents = FakeContents()
        funnels = FakeFunnels()
        product = new_id("prd")
        products = FakeProducts(product)
        clock = Clock()
    w = World()
    w.persona_cases = PersonaUseCases(w.personas, w.clock)
    w.content_cases = ContentUseCases(w.contents, w.personas, w.products, w.clock)
    w.funnel_cases = FunnelUseCases(w.funnels, w.persona_cases, w.content_cases)
    return w


def operator(merchant: str = MERCHANT, roles=("OPERATOR",)):
    return caller(merchant, staff_id="stf_1", roles=roles)


def persona_fields(code: str = "mama-lin", **overrides) -> PersonaFields:
    return PersonaFields(**{"code": code, "name": " 林老师 ", "expertise": "育儿", **overrides})


async def new_persona(w, code: str = "mama-lin"):
    with operator():
        persona, _ = await w.persona_cases.upsert(persona_fields(code))
    return persona


def content_fields(persona_id: str, code: str = "spring", **overrides) -> ContentFields:
    return ContentFields(**{"code": code, "persona_id": persona_id, "type": "ARTICLE", "title": " 春季护肤 ",
                            **overrides})


# ---- personas ---------------------------------------------------------------------------

async def test_a_persona_is_created_once_and_the_same_upsert_changes_nothing(world):
    with operator():
        persona, created = await world.persona_cases.upsert(persona_fields())
        again, created_again = await world.persona_cases.upsert(persona_fields())
    assert created and not created_again
    assert persona.fields.name == "林老师" and persona.version == 1 and persona.merchant_id == MERCHANT
    assert again.id == persona.id and again.version == 1
    assert world.personas.saves == 0


async def test_a_changed_persona_moves_to_the_next_version(world):
    persona = await new_persona(world)
    with operator():
        changed, created = await world.persona_cases.upsert(persona_fields(tone="温柔"))
    assert not created and changed.id == persona.id and changed.version == 2
    assert world.personas.items[persona.id].fields.tone == "温柔"
    assert world.personas.items[persona.id].version == 2


async def test_persona_upsert_refuses_bad_fields_and_callers(world):
    with operator(), pytest.raises(InvalidArgument) as bad:
        await world.persona_cases.upsert(persona_fields(code="a b", name=""))
    assert {v.field for v in bad.value.violations} == {"code", "name"}
    with operator(roles=("GUIDE",)), pytest.raises(PermissionDenied):
        await world.persona_cases.upsert(persona_fields())
    with caller(MERCHANT, channel="H5"), pytest.raises(Unauthenticated):
        await world.persona_cases.upsert(persona_fields())
    assert world.personas.items == {}


async def test_persona_upsert_reads_again_after_losing_a_write(world):
    persona = await new_persona(world)
    world.personas.writes_by_others = 2
    with operator():
        changed, _ = await world.persona_cases.upsert(persona_fields(bio="新简介"))
    # Two writers came first (versions 2 and 3); this change is the fourth version.
    assert changed.version == 4 and world.personas.items[persona.id].fields.bio == "新简介"


async def test_persona_upsert_gives_up_after_three_lost_writes(world):
    await new_persona(world)
    world.personas.writes_by_others = 3
    with operator(), pytest.raises(Conflict) as gave_up:
        await world.persona_cases.upsert(persona_fields(bio="新简介"))
    assert gave_up.value.reason == "VERSION_CONFLICT"
    assert gave_up.value.message == "the persona was changed concurrently; try again"


async def test_a_code_created_concurrently_is_read_again_and_updated(world):
    world.personas.codes_taken_by_others = 1
    with operator():
        persona, created = await world.persona_cases.upsert(persona_fields())
    assert not created and len(world.personas.items) == 1


async def test_persona_get_checks_the_id_and_the_merchant(world):
    persona = await new_persona(world)
    with operator():
        assert (await world.persona_cases.get(persona.id)).id == persona.id
        with pytest.raises(InvalidArgument):
            await world.persona_cases.get("cnt_1")
    with operator(OTHER), pytest.raises(NotFound):
        await world.persona_cases.get(persona.id)


# ---- content ----------------------------------------------------------------------------

async def test_new_content_is_a_draft_and_published_content_gets_its_time(world):
    persona = await new_persona(world)
    with operator():
        draft, created = await world.content_cases.upsert(content_fields(persona.id), "")
        live, _ = await world.content_cases.upsert(content_fields(persona.id, "live"), "PUBLISHED")
    assert created and draft.status == "DRAFT" and draft.published_at_ms == 0 and draft.fields.title == "春季护肤"
    assert live.status == "PUBLISHED" and live.published_at_ms > NOW


async def test_content_moves_forward_and_keeps_its_publish_time(world):
    persona = await new_persona(world)
    world.personas.items[persona.id].guide_ids = ("stf_1",)  # the guide runs this persona
    fields = content_fields(persona.id, publish_at_ms=NOW + 3_600_000)
    with operator(roles=("GUIDE",)):
        content, _ = await world.content_cases.upsert(fields, "SCHEDULED")
        published, _ = await world.content_cases.upsert(fields, "PUBLISHED")
        edited, _ = await world.content_cases.upsert(content_fields(persona.id, title="改"), "")
        archived, _ = await world.content_cases.upsert(fields, "ARCHIVED")
    assert published.status == "PUBLISHED" and published.version == 2
    assert edited.status == "PUBLISHED" and edited.published_at_ms == published.published_at_ms
    assert archived.status == "ARCHIVED" and archived.published_at_ms == published.published_at_ms
    assert world.contents.items[content.id].version == 4


async def test_content_never_moves_back(world):
    persona = await new_persona(world)
    with operator():
        content, _ = await world.content_cases.upsert(content_fields(persona.id), "PUBLISHED")
        with pytest.raises(FailedPrecondition) as refused:
            await world.content_cases.upsert(content_fields(persona.id), "DRAFT")
    assert refused.value.reason == "STATUS_TRANSITION"
    assert [v.field for v in refused.value.violations] == ["status"]
    assert world.contents.items[content.id].status == "PUBLISHED"


async def test_the_same_content_upsert_writes_nothing(world):
    persona = await new_persona(world)
    with operator():
        first, _ = await world.content_cases.upsert(content_fields(persona.id), "DRAFT")
        again, created = await world.content_cases.upsert(content_fields(persona.id), "")
    assert not created and again.version == first.version == 1 and world.contents.saves == 0


async def test_content_needs_its_persona_and_products_of_the_merchant(world):
    persona = await new_persona(world)
    with operator():
        with pytest.raises(NotFound) as no_persona:
            await world.content_cases.upsert(content_fields(new_id("per")), "")
        assert [v.field for v in no_persona.value.violations] == ["persona_id"]
        unknown = new_id("prd")
        with pytest.raises(NotFound) as no_product:
            await world.content_cases.upsert(content_fields(persona.id, product_ids=(world.product, unknown)), "")
        assert no_product.value.reason == "PRODUCT_NOT_FOUND"
        assert [v.field for v in no_product.value.violations] == ["product_ids[1]"]
        world.products.down = True
        with pytest.raises(Unavailable):
            await world.content_cases.upsert(content_fields(persona.id, product_ids=(world.product,)), "")
        world.products.down = False
        content, _ = await world.content_cases.upsert(content_fields(persona.id, product_ids=(world.product,)), "")
    assert content.fields.product_ids == (world.product,)
    assert len(world.contents.items) == 1


async def test_content_without_products_does_not_ask_the_catalog(world):
    persona = await new_persona(world)
    with operator():
        await world.content_cases.upsert(content_fields(persona.id), "")
    assert world.products.asked == []


async def test_content_upsert_refuses_bad_fields_and_callers(world):
    persona = await new_persona(world)
    with operator(), pytest.raises(InvalidArgument) as bad:
        await world.content_cases.upsert(content_fields(persona.id, type="POEM"), "LOST")
    assert {v.field for v in bad.value.violations} == {"type", "status"}
    with operator(roles=("FINANCE",)), pytest.raises(PermissionDenied):
        await world.content_cases.upsert(content_fields(persona.id), "")


async def test_content_upsert_retries_lost_writes_then_gives_up(world):
    persona = await new_persona(world)
    with operator():
        content, _ = await world.content_cases.upsert(content_fields(persona.id), "")
        world.contents.writes_by_others = 1
        published, _ = await world.content_cases.upsert(content_fields(persona.id), "PUBLISHED")
        assert published.status == "PUBLISHED" and published.version == 3
        world.contents.writes_by_others = 3
        with pytest.raises(Conflict) as gave_up:
            await world.content_cases.upsert(content_fields(persona.id), "ARCHIVED")
    assert gave_up.value.reason == "VERSION_CONFLICT"
    assert gave_up.value.message == "the content was changed concurrently; try again"
    world.contents.codes_taken_by_others = 1
    with operator():
        _, created = await world.content_cases.upsert(content_fields(persona.id, "raced"), "")
    assert not created


async def test_channels_see_only_published_content_with_its_persona(world):
    persona = await new_persona(world)
    with operator():
        draft, _ = await world.content_cases.upsert(content_fields(persona.id), "")
        live, _ = await world.content_cases.upsert(content_fields(persona.id, "live"), "PUBLISHED")
    with caller(MERCHANT, channel="H5"):
        shown, shown_persona = await world.content_cases.get_published(live.id)
        assert shown.id == live.id and shown_persona.id == persona.id
        with pytest.raises(NotFound):
            await world.content_cases.get_published(draft.id)
        with pytest.raises(InvalidArgument):
            await world.content_cases.get_published("per_1")
    with caller(OTHER, channel="H5"), pytest.raises(NotFound):
        await world.content_cases.get_published(live.id)
    with operator():
        assert (await world.content_cases.get_any(draft.id)).status == "DRAFT"


async def test_attribution_is_found_only_in_the_callers_merchant(world):
    persona = await new_persona(world)
    with operator():
        content, _ = await world.content_cases.upsert(content_fields(persona.id), "ARCHIVED")
    with caller(MERCHANT, channel="H5"):
        assert await world.content_cases.attribution_found(persona.id, content.id) == (True, True)
        assert await world.content_cases.attribution_found("", "") == (True, True)
        assert await world.content_cases.attribution_found(new_id("per"), "") == (False, True)
        with pytest.raises(InvalidArgument):
            await world.content_cases.attribution_found("cnt_x", "")
    with caller(OTHER, channel="H5"):
        assert await world.content_cases.attribution_found(persona.id, content.id) == (False, False)


# ---- funnels ----------------------------------------------------------------------------

AT = datetime(2024, 3, 31, 16, 30, tzinfo=timezone.utc)  # 2024-04-01 in Shanghai


def fact(persona_id: str = "", content_id: str = "", live: str = "", change: Counters | None = None,
         event_id: str | None = None, merchant: str = MERCHANT) -> OrderFact:
    return OrderFact(event_id=event_id or new_id("evt"), merchant_id=merchant, occurred_at=AT,
                     persona_id=persona_id, content_id=content_id, live_session_id=live,
                     change=change or funnels.order_placed(), currency="CNY")


async def test_an_order_event_counts_once_in_every_attributed_funnel(world):
    placed = fact("per_1", "cnt_1", "liv_1")
    assert await world.funnel_cases.record(placed) == 3
    assert await world.funnel_cases.record(placed) == 0  # a replay
    assert {(dim, ref, day) for (_, dim, ref, day) in world.funnels.buckets} == {
        ("persona", "per_1", "2024-04-01"), ("content", "cnt_1", "2024-04-01"), ("live_session", "liv_1", "2024-04-01")}
    assert all(b.counters == Counters(orders=1) for b in world.funnels.buckets.values())
    # Each save handed over the count it recorded, replay included.
    assert [(e.event_id, e.day) for e in world.funnels.saved] == [(placed.event_id, "2024-04-01")] * 6


async def test_unattributed_or_malformed_ids_count_nowhere(world):
    assert await world.funnel_cases.record(fact()) == 0
    assert await world.funnel_cases.record(fact("per:1", "x" * 65)) == 0
    assert world.funnels.buckets == {}


async def test_funnels_add_up_orders_payments_and_gmv(world):
    persona = await new_persona(world)
    with operator():
        content, _ = await world.content_cases.upsert(content_fields(persona.id), "PUBLISHED")
    await world.funnel_cases.record(fact(persona.id, content.id))
    await world.funnel_cases.record(fact(persona.id, content.id, change=funnels.order_paid(1999)))
    await world.funnel_cases.record(fact(persona.id, change=funnels.order_paid(1)))
    await world.funnel_cases.record(fact(persona.id, merchant=OTHER))
    with operator(roles=("GUIDE",)), pytest.raises(PermissionDenied):
        await world.funnel_cases.persona_funnel(persona.id)  # not (yet) this guide's persona
    with operator(roles=("GUIDE",)), pytest.raises(PermissionDenied):
        await world.funnel_cases.content_funnel(content.id)
    world.personas.items[persona.id].guide_ids = ("stf_1",)  # now the guide runs it
    with operator(roles=("GUIDE",)):
        shown, counters, currency = await world.funnel_cases.persona_funnel(persona.id)
        assert shown.id == persona.id and currency == "CNY"
        assert counters == Counters(orders=1, paid_orders=2, gmv=2000)
        _, counters, _ = await world.funnel_cases.content_funnel(content.id)
        assert counters == Counters(orders=1, paid_orders=1, gmv=1999)
    with operator(roles=("FINANCE",)), pytest.raises(PermissionDenied):
        await world.funnel_cases.persona_funnel(persona.id)


async def test_an_empty_funnel_reads_zero_in_the_default_currency(world):
    persona = await new_persona(world)
    with operator():
        _, counters, currency = await world.funnel_cases.persona_funnel(persona.id)
    assert counters == Counters() and currency == "CNY"
