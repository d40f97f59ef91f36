"""Live sessions: the state machine, the line-up rules, pins, the grace rule for live
prices and the like announcements (the domain directly), and the use cases over in-memory
ports: who may act, idempotent creation, bad input writing nothing, the guide-scoped list,
the room, likes counted once and announced at most once a second by one replica."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, strategies as st

from siyu_kit.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Violations
from siyu_kit.ids import new_id

from services.content.application.live_sessions import LikesAnnouncer, LiveSessions
from services.content.application.live_viewer_ports import ViewerFigures
from services.content.domain import live_sessions as rules
from services.content.domain.live_sessions import (CANCELLED, ENDED, LIVE, SCHEDULED, LineUpChanged, LineUpItem,
                                                   LiveSession, ProductPinned, SessionFields, SkuPrice, StateChanged)
from services.content.domain.personas import Persona, PersonaFields
from tests.fakes.content import FakePersonas, caller
from tests.fakes.content_feed import FakeCards
from tests.fakes.live_sessions import FakeLikes, FakeLineUpCatalog, FakeLiveSessions, FakeViewerStats

MERCHANT = "mch_A"
NOW = 1_700_000_000_000
MINUTE = 60_000
SKU_A, SKU_B, SKU_X = new_id("sku"), new_id("sku"), new_id("sku")
PRD_A, PRD_B = new_id("prd"), new_id("prd")
PER_X, MINE, THEIRS = new_id("per"), new_id("per"), new_id("per")
A_AT_800 = (LineUpItem(SKU_A, 800, product_id=PRD_A),)
A_AT_800_ASKED = (LineUpItem(SKU_A, 800),)


def fields(persona_id: str = PER_X, line_up=(), **more) -> SessionFields:
    return SessionFields(**{"persona_id": persona_id, "title": "直播", "scheduled_ms": NOW + 60 * MINUTE,
                            "line_up": tuple(line_up), **more})


def session(state: str = SCHEDULED, line_up=A_AT_800, **more) -> LiveSession:
    s = LiveSession.schedule("liv_1", MERCHANT, fields(line_up=line_up, **more), "k", NOW)
    s.state = state
    return s


# ---- the state machine -----------------------------------------------------------------------

ALLOWED = {(SCHEDULED, LIVE), (SCHEDULED, CANCELLED), (LIVE, ENDED)}


@pytest.mark.parametrize("source", rules.STATES)
@pytest.mark.parametrize("target", (LIVE, ENDED, CANCELLED))
def test_only_the_declared_moves_apply_and_the_same_state_changes_nothing(source, target):
    s = session(source)
    if source == target:
        assert s.change_state(target, NOW) is False and s.pull_events() == []
    elif (source, target) in ALLOWED:
        assert s.change_state(target, NOW + 5) is True
        assert s.state == target and s.pull_events() == [StateChanged("liv_1", target, NOW + 5)]
    else:
        with pytest.raises(FailedPrecondition) as refused:
            s.change_state(target, NOW)
        assert refused.value.reason == "LIVE_SESSION_STATE" and s.state == source


def test_start_and_end_are_stamped():
    s = session()
    s.change_state(LIVE, NOW + 1)
    s.change_state(ENDED, NOW + 2)
    assert (s.started_ms, s.ended_ms) == (NOW + 1, NOW + 2)


# ---- the line-up ----------------------------------------------------------------------------

def _violations(f: SessionFields) -> set[str]:
    v = Violations()
    rules.check_fields(f, v)
    return {x.field for x in v.items}


def test_the_line_up_holds_at_most_100_skus_each_once_at_no_negative_price():
    assert _violations(fields(line_up=[LineUpItem(new_id("sku"), 1) for _ in range(100)])) == set()
    assert _violations(fields(line_up=[LineUpItem(new_id("sku"), 1) for _ in range(101)])) == {"line_up"}
    assert _violations(fields(line_up=[LineUpItem(SKU_A, 1), LineUpItem(SKU_B, -1), LineUpItem(SKU_A, 2),
                                       LineUpItem("sku_bad", 1)])) == {
        "line_up[1].live_price", "line_up[2].sku_id", "line_up[3].sku_id"}
    assert _violations(fields(title="", price_grace_minutes=1441, persona_id="x", scheduled_ms=0,
                              cover_url="ftp://x")) == {"title", "price_grace_minutes", "persona_id",
                                                        "scheduled_at", "cover_url"}
    assert _violations(fields(scheduled_ms=rules.LATEST_MS)) == {"scheduled_at"}  # past 2286: no 15-digit key


def test_live_prices_are_below_the_list_price_of_a_sku_the_merchant_has():
    skus = {SKU_A: SkuPrice(SKU_A, PRD_A, 1000, "CNY"), SKU_B: SkuPrice(SKU_B, PRD_B, 500, "CNY")}
    v = Violations()
    priced = rules.priced_line_up((LineUpItem(SKU_A, 999), LineUpItem(SKU_B, 500), LineUpItem(SKU_X, 1)), skus, v)
    assert {x.field for x in v.items} == {"line_up[1].live_price", "line_up[2].sku_id"}
    assert priced[0] == LineUpItem(SKU_A, 999, "CNY", PRD_A)
    ok = Violations()
    assert rules.priced_line_up((LineUpItem(SKU_B, 0),), skus, ok)[0].product_id == PRD_B and not ok.items


# ---- pins and edits -----------------------------------------------------------------------

def test_only_a_line_up_sku_is_pinned_and_only_while_live():
    s = session(SCHEDULED)
    with pytest.raises(FailedPrecondition) as early:
        s.pin(SKU_A, NOW)
    assert early.value.reason == "LIVE_SESSION_STATE"
    s.state = LIVE
    with pytest.raises(FailedPrecondition) as stranger:
        s.pin(SKU_X, NOW)
    assert stranger.value.reason == "LIVE_PRODUCT_NOT_IN_LINE_UP"
    assert s.pin(SKU_A, NOW) is True and s.pin(SKU_A, NOW) is False
    assert s.pin("", NOW + 1) is True and s.pinned_sku_id == ""
    assert s.pull_events() == [ProductPinned("liv_1", PRD_A, SKU_A, NOW), ProductPinned("liv_1", "", "", NOW + 1)]


def test_a_live_line_up_change_is_announced_and_a_sku_that_left_is_unpinned():
    s = session(LIVE)
    s.pin(SKU_A, NOW)
    s.pull_events()
    assert s.revise(fields(line_up=[LineUpItem(SKU_B, 300, product_id=PRD_B)]), NOW + 1) is True
    assert s.pinned_sku_id == "" and s.pull_events() == [ProductPinned("liv_1", "", "", NOW + 1),
                                                         LineUpChanged("liv_1", NOW + 1)]
    assert s.revise(s.fields, NOW + 2) is False
    scheduled = session(SCHEDULED)
    assert scheduled.revise(fields(title="改", persona_id=new_id("per")), NOW) is True
    assert scheduled.pull_events() == [] and scheduled.fields.persona_id == PER_X  # the persona stays
    for state in (ENDED, CANCELLED):
        with pytest.raises(FailedPrecondition):
            session(state).revise(fields(title="late"), NOW)


# ---- the grace rule ---------------------------------------------------------------------------

@given(grace=st.integers(0, rules.GRACE_MAX_MINUTES), merchant=st.integers(1, 1440),
       after=st.integers(-10 * MINUTE, 3000 * MINUTE))
def test_live_prices_apply_while_live_and_until_the_grace_after_the_end(grace, merchant, after):
    s = session(LIVE, price_grace_minutes=grace)
    assert s.prices_apply(NOW + after, merchant) and s.live_prices(NOW + after, merchant) == s.fields.line_up
    s.change_state(ENDED, NOW)
    window = (grace or merchant) * MINUTE
    assert s.prices_apply(NOW + after, merchant) is (after < window)
    assert s.live_prices(NOW + after, merchant) == (s.fields.line_up if after < window else ())


@pytest.mark.parametrize("state", (SCHEDULED, CANCELLED))
def test_no_live_prices_before_the_start_or_when_cancelled(state):
    assert session(state).live_prices(NOW, 30) == ()


def test_likes_are_announced_when_they_changed_at_most_once_a_second():
    assert rules.likes_to_announce(5, 3, NOW - 1000, NOW)
    assert not rules.likes_to_announce(5, 3, NOW - 999, NOW)
    assert not rules.likes_to_announce(5, 5, 0, NOW)


# ---- the use cases -----------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = NOW

    def __call__(self) -> int:
        return self.now


def world(figures: dict | None = None) -> SimpleNamespace:
    w = SimpleNamespace(clock=Clock(), personas=FakePersonas(), sessions=FakeLiveSessions(),
                        catalog=FakeLineUpCatalog(SkuPrice(SKU_A, PRD_A, 1000, "CNY"),
                                                  SkuPrice(SKU_B, PRD_B, 2000, "CNY"),
                                                  flash_sales={}),
                        viewers=FakeViewerStats(figures))
    w.likes = FakeLikes(w.sessions)
    w.cases = LiveSessions(w.sessions, w.personas, w.catalog, FakeCards(PRD_A, PRD_B), w.viewers, w.likes,
                           clock=w.clock, grace_minutes=30)
    w.announcer = LikesAnnouncer(w.likes, clock=w.clock)
    for pid, guides in ((MINE, ("stf_g1",)), (THEIRS, ("stf_g2",))):
        w.personas.items[pid] = Persona(pid, MERCHANT, 1, PersonaFields(code=pid, name=pid), guide_ids=guides)
    return w


def staff(staff_id: str = "stf_op", *roles: str, merchant: str = MERCHANT):
    return caller(merchant, staff_id=staff_id, roles=roles or ("OPERATOR",))


def guide(staff_id: str = "stf_g1"):
    return staff(staff_id, "GUIDE")


def member(member_id: str = "mem_1", merchant: str = MERCHANT):
    return caller(merchant, member_id=member_id, channel="H5")


async def created(w, persona_id: str = MINE, key: str = "", line_up=A_AT_800_ASKED, **more):
    with guide() if persona_id == MINE else staff():
        return (await w.cases.create(fields(persona_id, line_up, **more), key or new_id("key"))).session


async def started(w, **more) -> LiveSession:
    s = await created(w, **more)
    with guide():
        return (await w.cases.change_state(s.id, LIVE))[0].session


async def test_a_guide_runs_only_their_personas_sessions_and_an_operator_any():
    w = world()
    with guide(), pytest.raises(PermissionDenied) as denied:
        await w.cases.create(fields(THEIRS), "k1")
    assert denied.value.reason == "PERSONA_NOT_ASSIGNED" and w.sessions.items == {}
    theirs = await created(w, THEIRS)
    with guide():
        for act in (lambda: w.cases.change_state(theirs.id, LIVE), lambda: w.cases.pin(theirs.id, SKU_A),
                    lambda: w.cases.update(theirs.id, 1, fields(""))):
            with pytest.raises(PermissionDenied):
                await act()
    mine = await created(w)
    assert mine.fields.line_up == (LineUpItem(SKU_A, 800, "CNY", PRD_A),)  # the catalog's product filled in
    with guide("stf_g2"), pytest.raises(PermissionDenied):
        await w.cases.change_state(mine.id, LIVE)


async def test_creation_is_idempotent_by_key_and_bad_input_writes_nothing():
    w = world()
    first, again = await created(w, key="same"), await created(w, key="same")
    assert first.id == again.id and len(w.sessions.items) == 1
    with staff(), pytest.raises(AlreadyExists) as reused:
        await w.cases.create(fields(THEIRS), "same")
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    with guide(), pytest.raises(InvalidArgument) as bad:
        await w.cases.create(fields(MINE, (LineUpItem(SKU_A, 1000), LineUpItem(SKU_X, 1))), "k2")
    assert {v.field for v in bad.value.violations} == {"line_up[0].live_price", "line_up[1].sku_id"}
    with guide(), pytest.raises(NotFound):
        await w.cases.create(fields("per_" + "0" * 26), "k3")
    assert len(w.sessions.items) == 1 and w.sessions.events == []


async def test_an_update_needs_the_current_version_and_a_live_change_is_announced():
    w = world()
    s = await started(w)
    with guide():
        with pytest.raises(Conflict) as stale:
            await w.cases.update(s.id, s.version - 1, fields("", (LineUpItem(SKU_B, 100),)))
        assert stale.value.reason == "VERSION_CONFLICT"
        changed = (await w.cases.update(s.id, s.version, fields("", (LineUpItem(SKU_B, 100),)))).session
    assert changed.version == s.version + 1 and changed.fields.line_up[0].product_id == PRD_B
    assert [type(e).__name__ for e, _ in w.sessions.events] == ["StateChanged", "LineUpChanged"]
    assert w.sessions.events[-1][1] == changed.version  # the event carries the version its write stored


async def test_state_changes_report_whether_they_changed_and_record_the_room_events():
    w = world()
    s = await created(w)
    with guide():
        shown, changed = await w.cases.change_state(s.id, LIVE)
        _, again = await w.cases.change_state(s.id, LIVE)
        with pytest.raises(FailedPrecondition):
            await w.cases.change_state(s.id, CANCELLED)
        with pytest.raises(InvalidArgument):
            await w.cases.change_state(s.id, SCHEDULED)
    assert (changed, again, shown.session.state) == (True, False, LIVE)
    assert [e.state for e, _ in w.sessions.events] == [LIVE]


async def test_another_merchant_finds_nothing():
    w = world()
    s = await started(w)
    with staff(merchant="mch_B"), pytest.raises(NotFound) as missing:
        await w.cases.change_state(s.id, ENDED)
    assert missing.value.reason == "LIVE_SESSION_NOT_FOUND"
    with member(merchant="mch_B"):
        with pytest.raises(NotFound):
            await w.cases.room(s.id)
        with pytest.raises(NotFound):
            await w.cases.like(s.id, 1, "k")
        assert (await w.cases.prices_now(s.id)).found is False
        assert await w.cases.of_product(PRD_A) == [] and await w.cases.upcoming_ids(MINE) == []


async def test_the_list_is_newest_first_and_a_guide_sees_only_their_personas():
    w = world()
    mine = [await created(w, scheduled_ms=NOW + i * MINUTE) for i in range(3)]
    theirs = await created(w, THEIRS)
    with staff():
        everyone, _ = await w.cases.page("", "", 0, "")
        first, token = await w.cases.page("", "", 2, "")
        rest, last = await w.cases.page("", "", 2, token)
    assert [s.session.id for s in everyone] == [theirs.id] + [s.id for s in reversed(mine)]
    assert [s.session.id for s in first + rest] == [s.session.id for s in everyone] and last == ""
    with guide():
        seen, _ = await w.cases.page("", "", 0, "")
        assert {s.session.id for s in seen} == {s.id for s in mine}
        with pytest.raises(PermissionDenied):
            await w.cases.page(THEIRS, "", 0, "")
        with pytest.raises(InvalidArgument):
            await w.cases.page("", LIVE, 0, token)  # a token issued for other filters
    with guide("stf_nobody"):
        assert await w.cases.page("", "", 0, "") == ([], "")


async def test_the_room_shows_figures_products_flash_sales_and_whether_prices_apply():
    w = world()
    s = await started(w)
    w.viewers.by_session[s.id] = ViewerFigures(unique=7, concurrent=3, peak=5)
    w.catalog.flash[s.id] = ["fls"]
    with member():
        room = await w.cases.room(s.id)
    assert room.shown.figures == ViewerFigures(7, 3, 5) and room.flash_sales == ["fls"]
    assert room.products == [{"product_id": PRD_A}] and room.prices_apply and room.persona.id == MINE
    with guide():
        await w.cases.change_state(s.id, ENDED)
    w.clock.now += 30 * MINUTE
    with member():
        assert (await w.cases.room(s.id)).prices_apply is False


async def test_prices_now_for_the_session_named_or_carried_and_only_within_the_grace():
    w = world()
    s = await started(w, price_grace_minutes=10)
    with caller(MERCHANT, service="order"):
        named = await w.cases.prices_now(s.id)
        carried = await w.cases.prices_now("", s.id)
        unknown = await w.cases.prices_now(new_id("liv"))
        unknown_carried = await w.cases.prices_now("", new_id("liv"))
    assert named.found and named.session_id == s.id and [(i.sku_id, i.live_price) for i in named.prices] == [
        (SKU_A, 800)]
    assert carried == named and unknown.found is False and unknown_carried.found is True
    with guide():
        await w.cases.change_state(s.id, ENDED)
    w.clock.now += 10 * MINUTE - 1
    with caller(MERCHANT, service="order"):
        assert (await w.cases.prices_now(s.id)).prices != ()
        w.clock.now += 1
        after = await w.cases.prices_now(s.id)
    assert after.found and after.prices == () and after.session_id == ""


async def test_product_and_persona_pages_list_upcoming_sessions_soonest_first():
    w = world()
    later = await created(w, scheduled_ms=NOW + 90 * MINUTE, line_up=(LineUpItem(SKU_A, 1), LineUpItem(SKU_B, 2)))
    sooner = await started(w, scheduled_ms=NOW + 30 * MINUTE)
    gone = await created(w, scheduled_ms=NOW + MINUTE)
    with guide():
        await w.cases.change_state(gone.id, CANCELLED)
    with member():
        rows = await w.cases.of_product(PRD_B)
        assert await w.cases.upcoming_ids(MINE) == [sooner.id, later.id]
        assert [s.session.id for s, _ in await w.cases.of_product(PRD_A)] == [sooner.id, later.id]
    assert [(s.session.id, [i.sku_id for i in items]) for s, items in rows] == [(later.id, [SKU_B])]


async def test_likes_count_once_per_key_only_while_live():
    w = world()
    s = await created(w)
    with member():
        with pytest.raises(FailedPrecondition) as early:
            await w.cases.like(s.id, 3, "k1")
        assert early.value.reason == "LIVE_SESSION_STATE"
    with guide():
        await w.cases.change_state(s.id, LIVE)
    with member():
        assert await w.cases.like(s.id, 3, "k1") == 3
        assert await w.cases.like(s.id, 3, "k1") == 3  # a repeat counts nothing
        with pytest.raises(InvalidArgument):
            await w.cases.like(s.id, 101, "k2")
    with member("mem_2"):
        assert await w.cases.like(s.id, 2, "k1") == 5  # the key is the member's


async def test_the_like_total_is_announced_at_most_once_a_second_and_never_lost():
    w = world()
    s = await started(w)
    with member():
        await w.cases.like(s.id, 3, "k1")
    assert await w.announcer.announce_due() == 1 and w.likes.announced == [(s.id, 3)]
    with member():
        await w.cases.like(s.id, 1, "k2")
    assert await w.announcer.announce_due() == 0  # within the second
    w.clock.now += 1000

    # A like arriving between the read and the announcement is announced next time.
    async def like_meanwhile():
        with member():
            await w.cases.like(s.id, 5, "k3")

    w.likes.meanwhile = like_meanwhile
    assert await w.announcer.announce_due() == 1 and w.likes.announced[-1] == (s.id, 4)
    w.clock.now += 1000
    assert await w.announcer.announce_due() == 1 and w.likes.announced[-1] == (s.id, 9)
    w.clock.now += 1000
    assert await w.announcer.announce_due() == 0  # nothing new


async def test_of_two_replicas_one_announces_each_total():
    w = world()
    s = await started(w)
    with member():
        await w.cases.like(s.id, 2, "k1")
    other = LikesAnnouncer(w.likes, clock=w.clock)

    async def other_replica_first():
        assert await other.announce_due() == 1

    w.likes.meanwhile = other_replica_first
    assert await w.announcer.announce_due() == 0
    assert w.likes.announced == [(s.id, 2)]
