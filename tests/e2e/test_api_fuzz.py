"""Every HTTP operation against what its own OpenAPI document (`/openapi.json`) declares,
with requests schemathesis generates from it, as a member, a staff owner or a channel.

Three promises, checked on every answer:

- **No 5xx**, whatever the input.
- **Positive mode** (requests the schema allows): none is refused as malformed. Malformed
  means a 400 INVALID_ARGUMENT: the gateway could not transcode the request or a service
  found a field out of what its contract declares. The only 400s allowed are the business
  rules a JSON schema cannot state, each listed in `BUSINESS_RULES` with its reason.
  Refusals of state (404, 409, 429 for stock or rate, and 400 FAILED_PRECONDITION) are fine.
- **Negative mode** (requests the schema forbids): none is accepted. Every answer is a 4xx.

Generation is derandomized (fixed seed per test) and bounded per operation, so it fails
the same way each time. Drawing a request costs far more than answering it (schemathesis
builds a strategy per mutated schema; a segment rule takes most of a second), so the
default suite draws a few per operation; SIYU_FUZZ_EXAMPLES=25,20 (positive, negative)
runs the deep search before a release or after a change to the contracts.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from siyu_kit.config import DEV_PLATFORM_TOKEN
from tests.support.shop import Shop

_POSITIVE, _NEGATIVE = (int(n) for n in os.environ.get("SIYU_FUZZ_EXAMPLES", "3,2").split(","))
EXAMPLES = {GenerationMode.POSITIVE: _POSITIVE, GenerationMode.NEGATIVE: _NEGATIVE}
TIMEOUT_S = 15
INPUTS = {"path", "query", "body"}

# (operationId, field pattern) → why a schema-valid value may still be refused: rules that
# relate several fields or depend on stored state, which a JSON schema cannot state.
BUSINESS_RULES: dict[tuple[str, str], str] = {
    ("MemberService_Login", r"code"): "the identity provider judges the login code",
    ("MemberService_BindWeChatPhone", r"code"): "WeChat judges the phone-number code",
    ("MemberService_BindSmsPhone", r"code"): "the code sent by SMS",
    ("MemberService_SetWeChatApp", r"channel"): "a channel with a WeChat login (MINI_PROGRAM, H5)",
    ("CatalogService_ListProducts", r"page_token"): "an opaque token a previous page issued",
    ("CatalogService_ListProducts", r"max_price"): "at least min_price",
    ("CatalogService_ListFlashSales", r"page_token"): "an opaque token a previous page issued",
    ("CatalogService_CreateFlashSale", r"ends_at"): "after starts_at and in the future",
    ("CatalogService_UpsertProduct", r"skus\[\d+\]\.code"): "SKU codes differ within a product",
    ("CatalogService_UpsertProduct", r"skus\[\d+\]\.tier_prices\[\d+\]\.(tier|price\.amount)"):
        "each tier once, at most the list price",
    ("CatalogService_UpsertProduct", r"skus\[\d+\]\.limited_time_price\.(price\.amount|ends_at)"):
        "at most the list price, ending after it starts",
    ("ContentService_UpsertContent", r"product_ids\[\d+\]"): "each product once",
    ("OrderService_PlaceOrder", r"attribution\.channel"): "unset or the channel of the API key",
    ("OrderService_PlaceOrder", r"lines\[\d+\]\.sku_id"): "one line per SKU",
    ("OrderService_QuoteCheckout", r"lines\[\d+\]\.sku_id"): "one line per SKU",
    ("OrderService_PlaceFlashSaleOrder", r"attribution\.channel"): "unset or the channel of the API key",
    ("OrderService_SearchOrders", r"created_to"): "after created_from",
    ("MemberService_CreateAddress", r"(province|city|district)_code"):
        "a region of the GB/T 2260 table, each inside the one above",
    ("MemberService_UpdateAddress", r"(province|city|district)_code"):
        "a region of the GB/T 2260 table, each inside the one above",
    ("OrderService_UpdateOrderSettings", r"settings\.threshold_reductions\[\d+\]\.(threshold|reduction)"):
        "thresholds increase, each reduction below its threshold",
    # ---- bargain ----
    ("OrderService_CreateBargainActivity", r"activity\.(start_price|floor_price)(\.amount)?"):
        "floor above 0 and below the start, both within the SKU's list price",
    ("OrderService_CreateBargainActivity", r"activity\.helpers_needed"): "start − floor at least 1 fen per helper",
    ("OrderService_CreateBargainActivity", r"activity\.time_limit_s"): "0 for 24 h, else at least 60 s",
    ("OrderService_CreateBargainActivity", r"activity\.ends_at"): "after starts_at",
    ("OrderService_PlaceBargainOrder", r"attribution\.channel"): "unset or the channel of the API key",
    # ---- end of bargain ----
    # ---- community group buy ----
    ("OrderService_CreateCommunityCampaign", r"cut_off_at"): "in the future and after starts_at",
    ("OrderService_CreateCommunityCampaign", r"pickup_date"): "a calendar date",
    ("OrderService_CreateCommunityCampaign", r"lines\[\d+\]\.sku_id"): "a SKU of the merchant, once per campaign",
    ("OrderService_ReviewCommunityLeader", r"reason"): "required when rejecting",
    ("OrderService_PlaceCommunityOrder", r"attribution\.channel"): "unset or the channel of the API key",
    ("OrderService_PlaceCommunityOrder", r"lines\[\d+\]\.sku_id"): "one line per SKU",
    # ---- end of community group buy ----
    # ---- freight templates ----
    ("OrderService_PutFreightTemplate", r"template\.(default_rule|rules\[\d+\])\.regions(\[\d+\])?"):
        "a region rule names 1..100 regions, the default rule none, each region in one rule only",
    ("OrderService_PutFreightTemplate", r"template\.excluded_regions\[\d+\]"):
        "a region is either priced by a rule or excluded, not both",
    # Staff administration and platform onboarding.
    ("MemberService_ListStaffUsers", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_ListApiKeys", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_ListAuditEntries", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_ListAuditEntries", r"action"): "one of the audited actions",
    ("MemberService_ListMembers", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_ListMembers", r"registered_before"): "after registered_from",
    ("MemberService_CreateStaffUser", r"roles(\[\d+\])?"): "each a role, not unspecified",
    ("MemberService_UpdateTierConfig", r"levels(\[\d+\]\.\w+)?"):
        "the four tiers in order, thresholds rising from 0",
    ("MemberService_OnboardMerchant", r"time_zone"): "an IANA time zone",
    ("MemberService_OnboardMerchant", r"name"): "not only spaces",
    ("MemberService_OnboardMerchant", r"channels(\[\d+\])?"): "each a channel, once",
    ("CatalogService_ListStaffProducts", r"page_token"): "an opaque token a previous page issued",
    ("CatalogService_ListStaffProducts", r"max_price"): "at least min_price",
    # ---- catalog staff lists ----
    ("CatalogService_ListStaffSkus", r"page_token"): "an opaque token a previous page issued",
    ("CatalogService_ListStaffCategories", r"page_token"): "an opaque token a previous page issued",
    ("CatalogService_ListStaffCategories", r"roots_only"): "not together with parent_id",
    ("CatalogService_ListStaffFlashSales", r"page_token"): "an opaque token a previous page issued",
    ("CatalogService_ListStaffFlashSales", r"starts_(from|before)"):
        "from 1970 to 2286, starts_before after starts_from",
    ("ContentService_ListPersonas", r"page_token"): "an opaque token a previous page issued",
    ("ContentService_ListContents", r"page_token"): "an opaque token a previous page issued",
    # ---- personas, follows, content and feed ----
    ("ContentService_UpsertContent", r"publish_at"): "required with SCHEDULED, and in the future",
    ("ContentService_UpsertContent", r"channels(\[\d+\])?"): "each a channel, not unspecified",
    ("ContentService_UpsertPersona", r"featured_product_ids\[\d+\]"): "each product once",
    ("ContentService_AssignPersonaGuides", r"guide_ids\[\d+\]"): "each guide once",
    ("ContentService_ListMyFollows", r"page_token"): "an opaque token a previous page issued",
    ("ContentService_ListMyFeed", r"page_token"): "an opaque token a previous page issued",
    ("ContentService_GetPersonaPage", r"page_token"): "an opaque token a previous page issued",
    # ---- end of personas, follows, content and feed ----
    # ---- points ----
    ("MemberService_ListMyPointsHistory", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_ListMemberPointsHistory", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_AdjustPoints", r"points"): "not 0",
    ("MemberService_AdjustPoints", r"reason"): "not only spaces",
    ("MemberService_UpdatePointsSettings", r"settings\.(step|min_points)"):
        "a step worth whole fen, the floor a whole number of steps",
    # ---- referral ----
    ("MemberService_GetMyReferral", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_UpdateReferralSettings", r"settings\.(inviter_points|inviter_coupon_template_id)"):
        "the inviter's points (more than 0 when on) or coupon template, as the reward kind says",
    ("MemberService_UpdateReferralSettings", r"settings\.(inviter|invitee)_coupon_template_id"):
        "a coupon template of the merchant",
    # ---- end of referral ----
    # ---- Points mall ----
    ("OrderService_CreatePointsMallItem", r"ends_at|cash_price"): "after starts_at; below the SKU's list price",
    ("OrderService_ListStaffPointsMallItems", r"page_token"): "an opaque token a previous page issued",
    ("OrderService_ListPointsMallItems", r"page_token"): "an opaque token a previous page issued",
    ("OrderService_PlacePointsMallOrder", r"attribution\.channel"): "unset or the channel of the API key",
    ("MemberService_CreatePointsMallCoupon", r"ends_at"): "after starts_at",
    ("MemberService_ListStaffPointsMallCoupons", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_ListPointsMallCoupons", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_ListMyRedemptions", r"page_token"): "an opaque token a previous page issued",
    # ---- end of Points mall ----
    # ---- distribution ----
    ("MemberService_UpdateDistributionSettings", r"settings\.(levels|level[12]_rate_bp)"):
        "1 or 2 levels (a third is unlawful), level 2 at 0 with one level, the rates adding up to at most 50%",
    ("MemberService_CreateDistributorLevel", r"name|level2_rate_bp"): "not only spaces; rates adding up to at most 50%",
    ("MemberService_UpdateDistributorLevel", r"name|level2_rate_bp"): "not only spaces; rates adding up to at most 50%",
    ("MemberService_RejectDistributor", r"reason"): "not only spaces",
    ("MemberService_ListMyTeam", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_ListDistributorApplications", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_ListDistributors", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_ListMyGuideCustomers", r"page_token"): "an opaque token a previous page issued",
    # ---- end of distribution ----
    # ---- coupons ----
    ("MemberService_CreateCouponTemplate", r"name"): "not only spaces",
    ("MemberService_CreateCouponTemplate", r"rule\.\w+(\[\d+\])?"):
        "the fields of the coupon's kind and scope, and no others; a product in scope or excluded, not both",
    ("MemberService_CreateCouponTemplate", r"validity\.(days|ends_at)"):
        "a window with a start before its end, or 1..3660 days from claim, not both",
    ("MemberService_UpdateCouponTemplate", r"name"): "not only spaces",
    ("MemberService_UpdateCouponTemplate", r"rule\.\w+(\[\d+\])?"):
        "the fields of the coupon's kind and scope, and no others; a product in scope or excluded, not both",
    ("MemberService_UpdateCouponTemplate", r"validity\.(days|ends_at)"):
        "a window with a start before its end, or 1..3660 days from claim, not both",
    ("MemberService_SetCouponTemplateState", r"state"): "a state a template can be moved to: ACTIVE, PAUSED, ENDED",
    ("MemberService_ListCouponTemplates", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_ListMyCoupons", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_ListMyCoupons", r"states(\[\d+\])?"): "each a state, not unspecified",
    ("MemberService_ListCouponsForCart", r"lines\[\d+\]\.amount"): "at most the line's unit price × quantity",
    ("MemberService_UpdateCouponSettings", r"settings\.new_member_template_id"): "a template of the merchant",
    ("MemberService_ListClaimableCoupons", r"page_token"): "an opaque token a previous page issued",
    # ---- staff views ----
    ("MemberService_StartCouponGrant", r"member_ids|segment_id"):
        "a list of members or a segment, one of the two",
    ("MemberService_SearchMembers", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_SearchMembers", r"registered_before"): "after registered_from",
    ("MemberService_SetMemberBirthday", r"birthday\.(year|day)"):
        "a real date: the year 1900 to this year (or 0 when not given), the day within its month",
    ("MemberService_UpdateMyProfile", r"birthday\.(year|day)"):
        "a real date: the year 1900 to this year (or 0 when not given), the day within its month",
    # ---- end of staff views ----
    # ---- funnels ----
    ("ContentService_GetFunnelReport", r"ref_id"):
        "an id of the dimension's kind: a per_, cnt_ or liv_ id, a channel name or a share code",
    ("ContentService_GetFunnelReport", r"(from|to)_day"):
        "calendar dates, to_day on or after from_day and at most 366 days later",
    ("ContentService_GetRepeatPurchaseReport", r"(from|to)_month"):
        "calendar months, to_month on or after from_month and at most 24 months later",
    # ---- end of funnels ----
    # ---- suppliers, payment split and finance ----
    ("OrderService_GetSupplierPayable", r"(from|to)_day"):
        "calendar dates, to_day on or after from_day and at most 92 days later",
    ("OrderService_GetSettlementStatement", r"day"): "a calendar date",
    ("OrderService_ExportSettlementStatement", r"(from|to)_day"):
        "calendar dates, to_day on or after from_day and at most 92 days later",
    ("OrderService_ReconcilePayments", r"day"): "a calendar date",
    ("MemberService_ListMyCommissions", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_ListMyWithdrawals", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_ListWithdrawals", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_GetCommissionPayable", r"page_token"): "an opaque token a previous page issued",
    ("OrderService_ListSuppliers", r"page_token"): "an opaque token a previous page issued",
    ("OrderService_ListSupplierLinks", r"page_token"): "an opaque token a previous page issued",
    ("ContentService_GetMyGuidePerformance", r"(from|to)_day"):
        "calendar dates, to_day on or after from_day and at most 366 days later",
    ("ContentService_ListGuidePerformance", r"(from|to)_day|page_token"):
        "calendar dates at most 366 days apart; an opaque token a previous page issued",
    ("ContentService_GetStorePerformance", r"(from|to)_day"):
        "calendar dates, to_day on or after from_day and at most 366 days later",
    ("ContentService_ListStorePerformance", r"(from|to)_day|page_token"):
        "calendar dates at most 366 days apart; an opaque token a previous page issued",
    # ---- end of suppliers, payment split and finance ----
    # ---- Group buy ----
    ("OrderService_CreateGroupBuyActivity", r"activity\..*"):
        "2..50 members (0: 2), ends after it starts, each SKU once and of the product, a group price above 0 and"
        " below the list price, a leader price at most the group price",
    ("OrderService_PlaceGroupBuyOrder", r"attribution\.channel"): "unset or the channel of the API key",
    # ---- end of Group buy ----
    # ---- content: engagement and share codes ----
    ("ContentService_ListComments", r"page_token"): "an opaque token a previous page issued",
    ("ContentService_ListCommentsForReview", r"page_token"): "an opaque token a previous page issued",
    ("ContentService_CreateShareCode", r"target_id"): "an id of the kind target_kind names",
    ("ContentService_CreateStaffShareCode", r"target_id"): "an id of the kind target_kind names",
    ("ContentService_ReportProductEvents", r"events\[\d+\]\.client_event_id"): "each event once in a batch",
    ("ContentService_ReportProductEvents", r"events\[\d+\]\.occurred_at"): "at most a day ago",
    # ---- end of content: engagement and share codes ----
    # ---- content: live sessions ----
    ("ContentService_CreateLiveSession", r"title"): "not only spaces",
    ("ContentService_CreateLiveSession", r"scheduled_at"): "from 1970 to 2286",
    ("ContentService_CreateLiveSession", r"line_up\[\d+\]\.(sku_id|live_price(\.currency)?)"):
        "each SKU once, a SKU of the merchant, its live price below its list price in its currency",
    ("ContentService_UpdateLiveSession", r"title"): "not only spaces",
    ("ContentService_UpdateLiveSession", r"scheduled_at"): "from 1970 to 2286",
    ("ContentService_UpdateLiveSession", r"expected_version"): "required: the version the change was made on",
    ("ContentService_UpdateLiveSession", r"line_up\[\d+\]\.(sku_id|live_price(\.currency)?)"):
        "each SKU once, a SKU of the merchant, its live price below its list price in its currency",
    ("ContentService_ChangeLiveSessionState", r"state"): "a state a session can be moved to: LIVE, ENDED, CANCELLED",
    ("ContentService_ListLiveSessions", r"page_token"): "an opaque token a previous page issued",
    ("ContentService_ListProductContents", r"page_token"): "an opaque token a previous page issued",
    ("MemberService_RevealMemberPhone", r"reason"): "at least 2 characters besides leading and trailing spaces",
    ("ContentService_LikeLiveSession", r"taps"): "required: 1 to 100 taps",
    # ---- end of content: live sessions ----
}


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    calls: int = 0
    negative: int = 0  # calls whose path, query or body broke the schema

    def add(self, case, response, what: str) -> None:
        if len(self.problems) < 60:
            try:
                error = json.loads(response.content)["error"]
                answer = f"{error['code']} {error.get('reason', '')} {error.get('field_violations') or error['message']}"
            except (ValueError, KeyError, TypeError):
                answer = response.content[:300].decode(errors="replace")
            self.problems.append(f"{what}: {case.method} {case.formatted_path} query={case.query} "
                                 f"body={str(case.body)[:200]} → {response.status_code} {answer[:500]}")


def _credentials(shop: Shop, member_token: str) -> dict[str, dict[str, str]]:
    staff = shop.staff_token()
    return {
        "PUBLIC": {},
        "CHANNEL": {"X-Api-Key": shop.key()},
        "MEMBER": {"X-Api-Key": shop.key(), "Authorization": f"Bearer {member_token}"},
        "STAFF": {"Authorization": f"Bearer {staff}"},
        "PLATFORM": {"Authorization": f"Bearer {DEV_PLATFORM_TOKEN}"},
    }


def _allowed_business_refusal(operation_id: str, body: dict) -> bool:
    # A violation with no field is the count of those past the cap, not a rule of its own.
    violations = [v for v in body.get("error", {}).get("field_violations") or [] if v.get("field")]
    if not violations:
        return False
    return all(any(op == operation_id and re.fullmatch(pattern, v["field"]) for op, pattern in BUSINESS_RULES)
               for v in violations)


def _unsent_query(case) -> bool:
    def empty(value) -> bool:
        return isinstance(value, list) and all(empty(v) for v in value)
    return any(empty(v) for v in (case.query or {}).values())


def _has_null(value) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False


def _judge(mode: GenerationMode, operation_id: str, case, response, found: Findings) -> None:
    found.calls += 1
    status = response.status_code
    if status >= 500:
        found.add(case, response, "5xx")
        return
    if mode is GenerationMode.NEGATIVE:
        # Only the path, query and body count: the credentials are ours, whatever headers were drawn.
        negative = case.meta is not None and any(
            c.mode.is_negative for where, c in case.meta.components.items() if where.value in INPUTS)
        if negative and _unsent_query(case) and [where.value for where, c in case.meta.components.items()
                                                 if where.value in INPUTS and c.mode.is_negative] == ["query"]:
            # A parameter whose value is an empty list never reaches the wire; what was sent may be valid.
            negative = False
        if negative and _has_null(case.body):
            # proto3 JSON reads null as the field's default; whether null is taken is the
            # transcoder's rule (its own tests cover it), not something the schema states.
            negative = False
        found.negative += negative
        if negative and status < 400:
            found.add(case, response, "a request the schema forbids was accepted")
        return
    if status == 400:
        try:
            body = json.loads(response.content)
        except ValueError:
            found.add(case, response, "400 without the JSON error body")
            return
        if body.get("error", {}).get("code") == "INVALID_ARGUMENT" and \
                not _allowed_business_refusal(operation_id, body):
            found.add(case, response, "a schema-valid request was refused as malformed")


# Operations after which the member's token never works again.
ENDS_THE_MEMBER = {"MemberService_EraseMe"}


def _fuzz(shop: Shop, mode: GenerationMode) -> Findings:
    member = shop.login("fuzz-member")["access_token"]
    credentials = _credentials(shop, member)
    document = httpx.get(shop.url + "/openapi.json", timeout=TIMEOUT_S).json()
    schema = schemathesis.openapi.from_dict(document)
    found = Findings()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            raw = operation.definition.raw
            operation_id = raw["operationId"]
            headers = credentials[raw["x-siyu-access"]]
            if operation_id in ENDS_THE_MEMBER:
                # Erasure ends its member for good: a member of its own, so later operations keep theirs.
                headers = {**headers, "Authorization": f"Bearer {shop.login('fuzz-' + operation_id)['access_token']}"}

            @settings(max_examples=EXAMPLES[mode], derandomize=True, deadline=None, database=None,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case):
                response = case.call(base_url=shop.url, session=session, headers=headers, timeout=TIMEOUT_S)
                _judge(mode, operation_id, case, response, found)

            run()
    return found


def test_schema_valid_requests_are_never_refused_as_malformed(shop):
    found = _fuzz(shop, GenerationMode.POSITIVE)
    assert found.calls > 100
    assert not found.problems, "\n".join(found.problems)


def test_requests_the_schema_forbids_are_never_accepted(shop):
    found = _fuzz(shop, GenerationMode.NEGATIVE)
    assert found.negative > 100
    assert not found.problems, "\n".join(found.problems)
