"""Personas run by guides, follows, scheduled publishing, channel visibility and the feed:
the domain rules directly, the use cases over in-memory ports."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from siyu_kit.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from siyu_kit.ids import new_id

from services.content.application.contents import ContentUseCases
from services.content.application.feed import ContentPages, Feeds, Follows, PersonaGuides, Publishing
from services.content.application.member_data import FollowsData, MemberData
from services.content.application.personas import PersonaUseCases
from services.content.domain import feed as feed_rules
from services.content.domain.contents import Content, ContentFields, ContentWasPublished, feed_key
from services.content.domain.guides import may_manage
from services.content.domain.personas import Persona, PersonaFields
from tests.fakes.content import FakePersonas, FakeProducts, caller
from tests.fakes.content_feed import FakeCards, FakeContentsWithEvents, FakeFollowerCounts, FakeFollows, FakePublished

MERCHANT = "mch_A"
G1 = new_id("stf")
NOW = 1_700_000_000_000
HOUR = 3_600_000


def article(persona_id: str = "per_x", **overrides) -> ContentFields:
    return ContentFields(**{"code": "c1", "persona_id": persona_id, "type": "ARTICLE", "title": "t", **overrides})


# ---- lifecycle and visibility -------------------------------------------------------------

def test_scheduled_content_needs_a_future_publish_time():
    with pytest.raises(InvalidArgument) as missing:
        Content.create("cnt_1", MERCHANT, article(), "SCHEDULED", NOW)
    with pytest.raises(InvalidArgument) as past:
        Content.create("cnt_1", MERCHANT, article(publish_at_ms=NOW - 1), "SCHEDULED", NOW)
    assert [v.field for v in missing.value.violations] == [v.field for v in past.value.violations] == ["publish_at"]
    scheduled = Content.create("cnt_1", MERCHANT, article(publish_at_ms=NOW + HOUR), "SCHEDULED", NOW)
    assert scheduled.status == "SCHEDULED" and scheduled.pull_events() == []
    # An edit that keeps the time it had is fine even once that time has come.
    assert scheduled.revise(article(publish_at_ms=NOW + HOUR, title="改"), "", NOW + 2 * HOUR)


def test_the_job_publishes_scheduled_content_once_when_its_time_has_come():
    content = Content.create("cnt_1", MERCHANT, article(publish_at_ms=NOW + HOUR), "SCHEDULED", NOW)
    assert not content.publish_due(NOW + HOUR - 1) and content.status == "SCHEDULED"
    assert content.publish_due(NOW + HOUR)
    assert (content.status, content.published_at_ms) == ("PUBLISHED", NOW + HOUR)
    assert content.pull_events() == [ContentWasPublished("cnt_1", NOW + HOUR)]
    assert not content.publish_due(NOW + 2 * HOUR) and content.pull_events() == []
    draft = Content.create("cnt_2", MERCHANT, article(publish_at_ms=NOW + HOUR), "", NOW)
    assert not draft.publish_due(NOW + 2 * HOUR) and draft.status == "DRAFT"


def test_publishing_by_staff_records_the_event_and_archiving_hides_it():
    content = Content.create("cnt_1", MERCHANT, article(), "", NOW)
    assert content.revise(article(), "PUBLISHED", NOW + 1) and content.pull_events() == [
        ContentWasPublished("cnt_1", NOW + 1)]
    assert content.visible_to("H5") and content.feed_key == feed_key(NOW + 1, "cnt_1")
    content.revise(article(), "ARCHIVED", NOW + 2)
    assert not content.visible_to("H5") and content.feed_key == "" and content.pull_events() == []


@pytest.mark.parametrize("channels, channel, visible", [
    ((), "H5", True), ((), "MINI_PROGRAM", True), (("MINI_PROGRAM",), "H5", False),
    (("MINI_PROGRAM",), "MINI_PROGRAM", True), (("H5", "LIVE"), "LIVE", True), (("H5",), "", True)])
def test_content_shows_on_the_channels_it_names(channels, channel, visible):
    content = Content.create("cnt_1", MERCHANT, article(channels=channels), "PUBLISHED", NOW)
    assert content.visible_to(channel) is visible


def test_bad_media_topics_and_channels_are_field_violations():
    from siyu_kit.errors import Violations
    from services.content.domain.contents import check_content
    v = Violations()
    check_content(article(persona_id="per_" + "1" * 26, media_urls=("https://ok/a.jpg", "javascript:alert(1)", "http://x y"),
                          topics=("护肤", "#tag", "x" * 21), channels=("H5", "WEB")), "", v)
    assert {x.field for x in v.items} == {"media_urls[1]", "media_urls[2]", "topics[1]", "topics[2]",
                                               "channels[1]"}


# ---- guides -------------------------------------------------------------------------------

@pytest.mark.parametrize("roles, staff, allowed", [
    (("OPERATOR",), "stf_x", True), (("OWNER",), "stf_x", True), (("GUIDE",), "stf_1", True),
    (("GUIDE",), "stf_2", False), (("FINANCE",), "stf_1", False), (("GUIDE",), "", False)])
def test_a_guide_manages_only_the_personas_assigned_to_them(roles, staff, allowed):
    assert may_manage(("stf_1",), staff, roles) is allowed


@pytest.fixture
def world():
    class World:
        personas = FakePersonas()
        contents = FakeContentsWithEvents()
        follows = FakeFollows()
        clock_now = [NOW]
    w = World()
    w.clock = lambda: w.clock_now[0]
    w.counts = FakeFollowerCounts(w.personas)
    w.published = FakePublished(w.contents)
    w.persona_cases = PersonaUseCases(w.personas, w.clock)
    w.content_cases = ContentUseCases(w.contents, w.personas, FakeProducts(), w.clock)
    w.guides = PersonaGuides(w.personas, w.clock)
    w.follow_cases = Follows(w.personas, w.follows, w.counts, w.clock)
    w.feeds = Feeds(w.personas, w.follows, w.published, w.clock)
    w.pages = ContentPages(w.personas, w.contents, w.published, w.follows, FakeCards())
    return w


def staff(roles=("OPERATOR",), staff_id="stf_op"):
    return caller(MERCHANT, staff_id=staff_id, roles=roles)


def as_member(member_id="mem_1", channel="H5", merchant=MERCHANT):
    return caller(merchant, member_id=member_id, channel=channel)


async def persona(w, code="p1") -> Persona:
    with staff():
        p, _ = await w.persona_cases.upsert(PersonaFields(code=code, name=code))
    return p


async def publish(w, persona_id: str, code: str, **fields) -> Content:
    w.clock_now[0] += 1000
    with staff():
        c, _ = await w.content_cases.upsert(article(persona_id, code=code, **fields), "PUBLISHED")
    return c


async def test_guides_are_assigned_by_operators_and_scope_what_a_guide_edits(world):
    mine, theirs = await persona(world, "mine"), await persona(world, "theirs")
    with staff():
        assigned = await world.guides.assign(mine.id, (G1,))
        with pytest.raises(InvalidArgument) as bad:
            await world.guides.assign(mine.id, (G1, G1, "x"))
    assert assigned.guide_ids == (G1,)
    assert {v.field for v in bad.value.violations} == {"guide_ids[1]", "guide_ids[2]"}
    with staff(("GUIDE",), G1):
        with pytest.raises(PermissionDenied):
            await world.guides.assign(mine.id, ())
        await world.content_cases.upsert(article(mine.id, code="ok"), "")
        with pytest.raises(PermissionDenied) as denied:
            await world.content_cases.upsert(article(theirs.id, code="no"), "")
        # Moving its own content to another guide's persona is refused too.
        with pytest.raises(PermissionDenied):
            await world.content_cases.upsert(article(theirs.id, code="ok"), "")
        edited, _ = await world.persona_cases.upsert(PersonaFields(code="mine", name="新名字"))
        with pytest.raises(PermissionDenied):
            await world.persona_cases.upsert(PersonaFields(code="brand-new", name="x"))
    assert denied.value.reason == "PERSONA_NOT_ASSIGNED" and edited.fields.name == "新名字"
    assert [c.fields.code for c in world.contents.items.values()] == ["ok"]


# ---- follows ------------------------------------------------------------------------------

async def test_following_is_idempotent_and_counts_each_real_change_once(world):
    p = await persona(world)
    with as_member():
        assert await world.follow_cases.follow(p.id) == (True, 1)
        assert await world.follow_cases.follow(p.id) == (False, 1)
    with as_member("mem_2"):
        assert await world.follow_cases.follow(p.id) == (True, 2)
        assert await world.follow_cases.unfollow(p.id) == (True, 1)
        assert await world.follow_cases.unfollow(p.id) == (False, 1)
    with as_member():
        rows, token = await world.follow_cases.mine(0, "")
    assert [(pp.id, f.persona_id) for pp, f in rows] == [(p.id, p.id)] and token == ""
    assert world.follows.events == [("followed", "mem_1", p.id), ("followed", "mem_2", p.id),
                                    ("unfollowed", "mem_2", p.id)]


async def test_following_another_merchants_or_a_bad_persona_is_refused(world):
    p = await persona(world)
    with as_member(merchant="mch_B"):
        with pytest.raises(NotFound):
            await world.follow_cases.follow(p.id)
    with as_member():
        with pytest.raises(InvalidArgument):
            await world.follow_cases.follow("per_nope")
    with staff():
        with pytest.raises(Unauthenticated):
            await world.follow_cases.follow(p.id)
    assert world.personas.items[p.id].follower_count == 0 and world.follows.rows == {}


async def test_erasure_deletes_the_members_follows_and_their_counts(world):
    a, b = await persona(world, "a"), await persona(world, "b")
    with as_member():
        await world.follow_cases.follow(a.id)
        await world.follow_cases.follow(b.id)
        await world.follow_cases.unfollow(b.id)
    with as_member("mem_2"):
        await world.follow_cases.follow(a.id)
    acknowledged = []

    async def acknowledge(member_id, service):
        acknowledged.append((member_id, service))

    data = MemberData([FollowsData(world.follows, world.counts, world.personas)], acknowledge)
    with staff():
        exported = await data.export("mem_" + "0" * 26)
    assert exported == {"follows": []}
    await data.erase(MERCHANT, "mem_1")
    await data.erase(MERCHANT, "mem_1")  # a redelivery changes nothing
    assert world.personas.items[a.id].follower_count == 1 and world.personas.items[b.id].follower_count == 0
    assert [k[1] for k in world.follows.rows] == ["mem_2"]
    assert acknowledged == [("mem_1", "content")] * 2


# ---- publishing ---------------------------------------------------------------------------

async def test_two_replicas_publish_each_scheduled_item_once(world):
    p = await persona(world)
    with staff():
        for code in ("s1", "s2"):
            await world.content_cases.upsert(article(p.id, code=code, publish_at_ms=NOW + HOUR), "SCHEDULED")
    world.clock_now[0] = NOW + HOUR
    one, two = Publishing(world.contents, world.published, world.clock), Publishing(world.contents,
                                                                                    world.published, world.clock)
    # Both read the due items before either writes: the second loses each compare-and-set.
    due = await world.published.due(world.clock(), 10)
    assert len(due) == 2
    assert await one.publish_due() == 2
    for content in due:
        assert content.publish_due(world.clock())
    lost = 0
    for content in due:
        try:
            await world.contents.save(content)
        except Exception:  # noqa: BLE001 - StaleVersion: the other replica came first
            lost += 1
    assert lost == 2 and await two.publish_due() == 0
    assert [type(e).__name__ for e in world.contents.events] == ["ContentWasPublished"] * 2
    assert {c.status for c in world.contents.items.values()} == {"PUBLISHED"}


# ---- feed and pages -----------------------------------------------------------------------

async def test_the_feed_mixes_followed_and_recommended_and_pages_stay_stable(world):
    followed, other = await persona(world, "f"), await persona(world, "o")
    f_items = [await publish(world, followed.id, f"f{i}") for i in range(4)]
    o_items = [await publish(world, other.id, f"o{i}") for i in range(3)]
    await publish(world, other.id, "app", channels=("MINI_PROGRAM",))
    with as_member():
        await world.follow_cases.follow(followed.id)
        first, token = await world.feeds.page(4, "")
        # Three of four from followed personas, newest first overall.
        assert [(c.id, r) for c, _, r in first] == [(o_items[2].id, "RECOMMENDED")] + [
            (c.id, "FOLLOWED") for c in reversed(f_items[1:])]
        await publish(world, followed.id, "late")
        with as_member():
            rest, last = await world.feeds.page(4, token)
        assert [(c.id, r) for c, _, r in rest] == [(o_items[1].id, "RECOMMENDED"), (o_items[0].id, "RECOMMENDED"),
                                                    (f_items[0].id, "FOLLOWED")]
        assert last == "" and all(p is not None for _, p, _ in rest)
        with pytest.raises(InvalidArgument):
            await world.feeds.page(4, "garbage")


async def test_the_persona_page_and_content_detail_show_only_what_the_channel_may(world):
    p = await persona(world)
    with staff():
        await world.persona_cases.upsert(PersonaFields(code="p1", name="p1",
                                                       featured_product_ids=("prd_" + "1" * 26,)))
    shown = await publish(world, p.id, "shown")
    await publish(world, p.id, "app", channels=("MINI_PROGRAM",))
    with staff():
        draft, _ = await world.content_cases.upsert(article(p.id, code="draft"), "")
    with as_member():
        await world.follow_cases.follow(p.id)
        page, following, contents, token, featured = await world.pages.persona_page(p.id, 0, "")
        assert following and [c.id for c in contents] == [shown.id] and page.follower_count == 1
        content, owner, products = await world.pages.detail(shown.id)
        assert owner.id == p.id and products == []
        with pytest.raises(NotFound):
            await world.pages.detail(draft.id)
    with caller(MERCHANT, channel="H5"):  # no member: the page shows, "following" is false
        assert (await world.pages.persona_page(p.id, 0, ""))[1] is False


# ---- the feed's positions, property-tested ------------------------------------------------

def _content_key(i: int) -> str:
    return feed_key(NOW + i, "cnt_" + new_id("cnt")[4:])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=0, max_size=30), st.integers(min_value=1, max_value=7),
       st.lists(st.integers(min_value=0, max_value=6), max_size=5))
def test_paging_the_feed_shows_every_item_once_whatever_arrives_between_pages(followed_flags, size, arrivals):
    """Items (followed or not) with increasing keys; new items arrive after each page with
    keys above everything shown so far. Paging to the end shows every original item exactly
    once, with its reason, and no later page shows an item that arrived after the first."""
    items = [(_content_key(i), flag) for i, flag in enumerate(followed_flags)]
    top = feed_rules.ceiling(NOW + len(items))
    at, shown, pages = feed_rules.Position(), [], 0
    arrived: list[tuple[str, bool]] = []
    while True:
        everything = items + arrived

        def stream(want_followed: bool, below: str) -> list[feed_rules.Candidate]:
            rows = sorted((k for k, f in everything if f is want_followed and k < below), reverse=True)
            return [feed_rules.Candidate(k, (k, want_followed)) for k in rows[:size + 1]]

        page = feed_rules.mix(stream(True, at.followed or top), stream(False, at.recommended or top), size, at, top)
        assert 0 < len(page.items) <= size or (not items and not page.items)
        shown += [(item, reason) for item, reason in page.items]
        pages += 1
        if page.next is None:
            break
        at = page.next
        # Content published now: above the first page's ceiling.
        for n in range(arrivals[pages - 1] if pages - 1 < len(arrivals) else 0):
            arrived.append((feed_key(NOW + 10_000 + len(arrived), "cnt_" + new_id("cnt")[4:]), n % 2 == 0))
    assert sorted(k for (k, _), _ in shown) == sorted(k for k, _ in items)
    assert all(reason == ("FOLLOWED" if f else "RECOMMENDED") for (_, f), reason in shown)


def test_a_position_only_parses_what_a_page_issued():
    key = feed_key(NOW, "cnt_" + "A" * 26)
    assert feed_rules.Position.parse(f"{key}|") == feed_rules.Position(key, "")
    assert feed_rules.Position.parse(f"{key}|{key}") == feed_rules.Position(key, key)
    assert feed_rules.Position.parse("nonsense") is None and feed_rules.Position.parse("x|") is None


async def test_featured_products_must_be_the_merchants(world):
    known = new_id("prd")
    cases = PersonaUseCases(world.personas, world.clock, products=FakeProducts(known))
    unknown = new_id("prd")
    with staff():
        with pytest.raises(NotFound) as missing:
            await cases.upsert(PersonaFields(code="p", name="p", featured_product_ids=(known, unknown)))
        persona, _ = await cases.upsert(PersonaFields(code="p", name="p", featured_product_ids=(known,)))
    assert missing.value.reason == "PRODUCT_NOT_FOUND"
    assert [v.field for v in missing.value.violations] == ["featured_product_ids[1]"]
    assert persona.fields.featured_product_ids == (known,)
