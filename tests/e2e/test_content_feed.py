"""Personas run by guides, follows, persona pages, content detail with the member's price,
the member's feed and scheduled publishing, through the gateway as front ends call them.

A guard reads the "Personas, follows, content and feed" block of content.proto: every
annotated RPC there needs a bad-input case and a cross-merchant case below."""
from __future__ import annotations

import asyncio
import re
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import nats
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from siyu_kit.devstack import free_port, wait_for_port
from siyu_kit.events.outbox import decode
from siyu_kit.ids import new_id
from tests.support import wait_until
from tests.support.content import assign, limited_time_product, new_content, new_guide, new_persona, rfc3339
from tests.support.shop import Shop, ok, refused

BLOCK = "Personas, follows, content and feed"


def block_rpcs() -> tuple[set[str], set[str]]:
    """(annotated RPCs, internal RPCs) of this block of content.proto."""
    text = (Path(__file__).parents[2] / "protos/siyu/content/v1/content.proto").read_text(encoding="utf-8")
    # The block runs to the next block's marker or the end of the service.
    block = text.split(f"// ---- {BLOCK} ----", 1)[1].split("\n}\n", 1)[0].split("\n  // ---- ", 1)[0]
    annotated, internal = set(), set()
    for name, body in re.findall(r"rpc (\w+)\(.*?\{(.*?)\n  \}", block, re.S):
        (annotated if "google.api.http" in body else internal).add(name)
    return annotated, internal


def member(shop: Shop) -> str:
    return shop.login("feed-" + uuid.uuid4().hex[:10])["access_token"]


def feed(shop: Shop, token: str, size: int = 20, page_token: str = "", channel: str = "H5") -> dict:
    params = {"page_size": size, **({"page_token": page_token} if page_token else {})}
    return ok(shop.call("GET", "/v1/me/feed", token=token, params=params, channel=channel))


def ids_and_reasons(page: dict) -> list[tuple[str, str]]:
    return [(i["content"]["content_id"], i["reason"].removeprefix("FEED_REASON_")) for i in page.get("items", [])]


def test_follow_then_feed_pages_stay_stable_while_content_arrives(shop, other_shop):
    followed, other = new_persona(shop, name="小美"), new_persona(shop, name="王姐")
    older = [new_content(shop, followed["persona_id"], title=f"关注 {i}") for i in range(3)]
    stranger = new_content(shop, other["persona_id"], title="推荐")
    token = member(shop)

    first = ok(shop.call("POST", "/v1/me/follows", token=token, json={"persona_id": followed["persona_id"]}))
    again = ok(shop.call("POST", "/v1/me/follows", token=token, json={"persona_id": followed["persona_id"]}))
    assert (first["changed"], first["follower_count"]) == (True, "1")
    assert (again["changed"], again["follower_count"]) == (False, "1")  # idempotent: counted once
    mine = ok(shop.call("GET", "/v1/me/follows", token=token))["follows"]
    assert [f["persona"]["persona_id"] for f in mine] == [followed["persona_id"]]

    # Newest first in each stream, each item labelled with why it is there (the seeded
    # shop's own content is recommended too).
    whole = ids_and_reasons(feed(shop, token, size=100))
    mine = {c["content_id"] for c in older} | {stranger["content_id"]}
    assert [pair for pair in whole if pair[0] in mine] == [(stranger["content_id"], "RECOMMENDED")] + [
        (c["content_id"], "FOLLOWED") for c in reversed(older)]

    # Page by two; content published after the first page never shifts the later pages.
    pages = [feed(shop, token, size=2)]
    fresh = new_content(shop, followed["persona_id"], title="新的")
    while pages[-1]["next_page_token"]:
        pages.append(feed(shop, token, size=2, page_token=pages[-1]["next_page_token"]))
    seen = [c for page in pages for c, _ in ids_and_reasons(page)]
    assert fresh["content_id"] not in seen and len(seen) == len(set(seen))
    assert sorted(seen) == sorted(c for c, _ in whole)
    assert ids_and_reasons(feed(shop, token, size=1))[0] == (fresh["content_id"], "FOLLOWED")

    # The persona page: profile, count, following, its content; sessions are not there yet.
    page = ok(shop.call("GET", f"/v1/personas/{followed['persona_id']}", token=token, params={"page_size": 2}))
    assert page["following"] is True and page["persona"]["follower_count"] == "1"
    assert [c["content_id"] for c in page["contents"]] == [fresh["content_id"], older[2]["content_id"]]
    assert page["live_session_ids"] == []

    gone = ok(shop.call("DELETE", f"/v1/me/follows/{followed['persona_id']}", token=token))
    assert (gone["changed"], gone["follower_count"]) == (True, "0")
    assert ok(shop.call("DELETE", f"/v1/me/follows/{followed['persona_id']}", token=token))["changed"] is False
    assert {r for _, r in ids_and_reasons(feed(shop, token))} == {"RECOMMENDED"}

    # Another merchant's member sees nothing of this shop.
    theirs = {c for c, _ in ids_and_reasons(feed(other_shop, member(other_shop), size=100))}
    assert not theirs & (mine | {fresh["content_id"]})


def test_content_detail_prices_channels_and_archiving(shop):
    product = shop.new_product(stock=5, price=10000)
    # A limited-time price in its window: what a member pays beats the list price.
    cheaper = limited_time_product(shop, list_fen=9000, price_fen=7000)
    persona = new_persona(shop)
    item = new_content(shop, persona["persona_id"], product_ids=[product["product_id"], cheaper["product_id"]],
                       media_urls=["https://cdn.example.com/a.jpg"], topics=["护肤"])
    token = member(shop)
    detail = ok(shop.call("GET", f"/v1/me/contents/{item['content_id']}", token=token))
    assert [p["product_id"] for p in detail["products"]] == [product["product_id"], cheaper["product_id"]]
    assert detail["products"][1]["skus"][0]["member_price"]["amount"] == "7000"
    assert detail["persona"]["persona_id"] == persona["persona_id"]
    assert detail["content"]["media_urls"] == ["https://cdn.example.com/a.jpg"]

    # Visible only on the channels it names.
    app_only = new_content(shop, persona["persona_id"], channels=["CHANNEL_MINI_PROGRAM"])
    refused(shop.call("GET", f"/v1/me/contents/{app_only['content_id']}", token=token), 404)
    refused(shop.call("GET", f"/v1/contents/{app_only['content_id']}"), 404)
    ok(shop.call("GET", f"/v1/me/contents/{app_only['content_id']}", token=token, channel="MINI_PROGRAM"))
    assert app_only["content_id"] not in [c for c, _ in ids_and_reasons(feed(shop, token))]
    assert app_only["content_id"] in [c for c, _ in ids_and_reasons(feed(shop, token, channel="MINI_PROGRAM"))]

    # Archived and draft content is gone for members.
    ok(shop.as_staff("POST", "/v1/staff/contents", json={
        "code": item["code"], "persona_id": persona["persona_id"], "type": "CONTENT_TYPE_ARTICLE",
        "title": item["title"], "status": "CONTENT_STATUS_ARCHIVED"}))
    refused(shop.call("GET", f"/v1/me/contents/{item['content_id']}", token=token), 404)
    draft = new_content(shop, persona["persona_id"], status="DRAFT")
    refused(shop.call("GET", f"/v1/me/contents/{draft['content_id']}", token=token), 404)
    listed = [c for c, _ in ids_and_reasons(feed(shop, token, size=100))]
    assert item["content_id"] not in listed and draft["content_id"] not in listed


def test_a_guide_works_only_on_their_own_personas(shop):
    mine, theirs = new_persona(shop), new_persona(shop)
    guide, guide_id = new_guide(shop)
    other_id = new_id("stf")  # another guide's staff id
    assert assign(shop, mine["persona_id"], guide_id)["guide_ids"] == [guide_id]
    assign(shop, theirs["persona_id"], other_id)

    new_content(shop, mine["persona_id"], token=guide)
    refused(shop.call("POST", "/v1/staff/contents", channel=None, token=guide, json={
        "code": "g-" + uuid.uuid4().hex[:8], "persona_id": theirs["persona_id"], "type": "CONTENT_TYPE_ARTICLE",
        "title": "不是我的"}), 403, "PERSONA_NOT_ASSIGNED")
    refused(shop.call("POST", "/v1/staff/personas", channel=None, token=guide, json={
        "code": theirs["code"], "name": "改名"}), 403, "PERSONA_NOT_ASSIGNED")
    ok(shop.call("POST", "/v1/staff/personas", channel=None, token=guide, json={
        "code": mine["code"], "name": "我的新名字"}))
    listed = ok(shop.call("GET", "/v1/staff/personas", channel=None, token=guide))["personas"]
    assert [p["persona_id"] for p in listed] == [mine["persona_id"]]
    refused(shop.call("GET", "/v1/staff/contents", channel=None, token=guide,
                      params={"persona_id": theirs["persona_id"]}), 403, "PERSONA_NOT_ASSIGNED")
    refused(shop.call("POST", f"/v1/staff/personas/{mine['persona_id']}:assign-guides", channel=None, token=guide,
                      json={"guide_ids": [guide_id]}), 403)

    # Funnels: their own persona's, never another's, and no merchant-wide ones.
    today = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d")

    def funnel(dimension: str, ref_id: str):
        return shop.call("GET", "/v1/staff/funnel-report", channel=None, token=guide, params={
            "dimension": f"FUNNEL_DIMENSION_{dimension}", "ref_id": ref_id, "from_day": today, "to_day": today})
    assert "total" in ok(funnel("PERSONA", mine["persona_id"]))
    refused(funnel("PERSONA", theirs["persona_id"]), 403, "PERSONA_NOT_ASSIGNED")
    refused(funnel("CHANNEL", "H5"), 403, "PERSONA_NOT_ASSIGNED")
    refused(shop.call("GET", f"/v1/staff/personas/{theirs['persona_id']}/funnel", channel=None, token=guide), 403,
            "PERSONA_NOT_ASSIGNED")


@pytest.fixture
def second_content_process(stack):
    """Another content service process on the same database and NATS: two replicas."""
    port, metrics = free_port(), free_port()
    env = {**stack.service_env("content"), "SIYU_GRPC_PORT": str(port), "SIYU_METRICS_PORT": str(metrics)}
    stack._spawn("content-2", [sys.executable, "-m", "services.content"], env)
    wait_for_port(port, 60, "the second content process", stack.procs["content-2"])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        wait_until(lambda: health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2).status
                   == health_pb2.HealthCheckResponse.SERVING, timeout=60, message="the second process serving")
    yield
    stack.stop("content-2")


async def _published_events(nats_url: str) -> dict[str, set[str]]:
    """content id → the ids of the ContentPublished events on the stream."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe("siyu.content.content.published", stream="SIYU_CONTENT")
        pending = (await sub.consumer_info()).num_pending
        found: dict[str, set[str]] = {}
        while pending > 0:
            batch = await sub.fetch(min(pending, 256), timeout=10)
            for msg in batch:
                envelope = decode(msg.data)
                found.setdefault(envelope.aggregate_id, set()).add(envelope.event_id)
            pending -= len(batch)
        return found
    finally:
        await nc.close()


def test_scheduled_content_is_published_once_with_two_processes(shop, stack, second_content_process):
    persona = new_persona(shop)
    # Each a few seconds after it is written (a slow machine may take seconds per call).
    scheduled = [new_content(shop, persona["persona_id"], status="SCHEDULED",
                             publish_at=rfc3339(datetime.now(timezone.utc) + timedelta(seconds=3)))
                 for _ in range(3)]
    assert all(c["status"] == "CONTENT_STATUS_SCHEDULED" for c in scheduled)

    for c in scheduled:
        wait_until(lambda: shop.call("GET", f"/v1/contents/{c['content_id']}").status_code == 200, timeout=20,
                   interval=0.2, message="published by the job")
    # A later item published by the job means both processes' runs over the first batch are over.
    marker = new_content(shop, persona["persona_id"], status="SCHEDULED",
                         publish_at=rfc3339(datetime.now(timezone.utc) + timedelta(seconds=3)))
    wait_until(lambda: shop.call("GET", f"/v1/contents/{marker['content_id']}").status_code == 200, timeout=20,
               interval=0.2, message="the marker published")
    events = wait_until(lambda: (lambda found: found if all(c["content_id"] in found for c in scheduled) else None)(
        asyncio.run(_published_events(stack.nats_url))), timeout=20, interval=0.3, message="events relayed")
    assert all(len(events[c["content_id"]]) == 1 for c in scheduled), events


# ---- bad input and other merchants: every route of the block ---------------------------

BAD_ID = "not-an-id"


def _bad_cases(shop: Shop, token: str, persona: dict, content: dict) -> dict:
    def fields(resp, *names):
        refused(resp, 400, fields=set(names))

    return {
        "AssignPersonaGuides": lambda: fields(shop.as_staff(
            "POST", f"/v1/staff/personas/{persona['persona_id']}:assign-guides", json={"guide_ids": ["x"]}),
            "guide_ids[0]"),
        "FollowPersona": lambda: fields(shop.call("POST", "/v1/me/follows", token=token,
                                                  json={"persona_id": BAD_ID}), "persona_id"),
        "UnfollowPersona": lambda: fields(shop.call("DELETE", f"/v1/me/follows/{BAD_ID}", token=token),
                                          "persona_id"),
        "ListMyFollows": lambda: fields(shop.call("GET", "/v1/me/follows", token=token,
                                                  params={"page_size": 101}), "page_size"),
        "GetPersonaPage": lambda: fields(shop.call("GET", f"/v1/personas/{persona['persona_id']}",
                                                   params={"page_token": "junk"}), "page_token"),
        "GetContentDetail": lambda: fields(shop.call("GET", f"/v1/me/contents/{BAD_ID}", token=token),
                                           "content_id"),
        "ListMyFeed": lambda: fields(shop.call("GET", "/v1/me/feed", token=token, params={"page_token": "junk"}),
                                     "page_token"),
    }


def _cross_cases(a: Shop, b: Shop, b_token: str, persona: dict, content: dict) -> dict:
    def not_found(resp):
        refused(resp, 404)

    return {
        "AssignPersonaGuides": lambda: not_found(b.as_staff(
            "POST", f"/v1/staff/personas/{persona['persona_id']}:assign-guides", json={"guide_ids": []})),
        "FollowPersona": lambda: not_found(b.call("POST", "/v1/me/follows", token=b_token,
                                                  json={"persona_id": persona["persona_id"]})),
        "UnfollowPersona": lambda: not_found(b.call("DELETE", f"/v1/me/follows/{persona['persona_id']}",
                                                    token=b_token)),
        "ListMyFollows": lambda: ok(b.call("GET", "/v1/me/follows", token=b_token))["follows"] == [] or _fail(),
        "GetPersonaPage": lambda: not_found(b.call("GET", f"/v1/personas/{persona['persona_id']}")),
        "GetContentDetail": lambda: not_found(b.call("GET", f"/v1/me/contents/{content['content_id']}",
                                                     token=b_token)),
        "ListMyFeed": lambda: content["content_id"] not in str(feed(b, b_token, size=100)) or _fail(),
    }


def _fail():
    raise AssertionError("merchant B saw merchant A's data")


def test_every_route_of_the_block_refuses_bad_input_and_other_merchants(shop, other_shop):
    annotated, internal = block_rpcs()
    assert internal == {"ExportMemberData"}
    persona = new_persona(shop)
    content = new_content(shop, persona["persona_id"])
    token = member(shop)
    ok(shop.call("POST", "/v1/me/follows", token=token, json={"persona_id": persona["persona_id"]}))
    bad = _bad_cases(shop, token, persona, content)
    cross = _cross_cases(shop, other_shop, member(other_shop), persona, content)
    assert set(bad) == annotated and set(cross) == annotated
    for rpc in sorted(annotated):
        bad[rpc]()
        cross[rpc]()
    # Nothing of that changed A's persona: still one follower, no guides.
    page = ok(shop.call("GET", f"/v1/personas/{persona['persona_id']}"))["persona"]
    assert page["follower_count"] == "1" and page["guide_ids"] == []

    # Content with bad media, topics or schedule: field violations, nothing written.
    persona = new_persona(shop)
    code = "bad-" + uuid.uuid4().hex[:8]
    base = {"code": code, "persona_id": persona["persona_id"], "type": "CONTENT_TYPE_VIDEO", "title": "坏"}
    refused(shop.as_staff("POST", "/v1/staff/contents", json={
        **base, "media_urls": ["ftp://x/y.mp4"], "topics": ["#话题"], "channels": ["CHANNEL_UNSPECIFIED"]}), 400,
        fields={"media_urls[0]", "topics[0]"})
    refused(shop.as_staff("POST", "/v1/staff/contents", json={**base, "status": "CONTENT_STATUS_SCHEDULED"}), 400,
            fields={"publish_at"})
    refused(shop.as_staff("POST", "/v1/staff/contents", json={
        **base, "status": "CONTENT_STATUS_SCHEDULED",
        "publish_at": rfc3339(datetime.now(timezone.utc) - timedelta(minutes=1))}), 400, fields={"publish_at"})
    listed = ok(shop.as_staff("GET", "/v1/staff/contents", params={"persona_id": persona["persona_id"]}))
    assert listed.get("contents", []) == []
