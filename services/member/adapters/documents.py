"""What the member service stores. Ids are prefixed ULIDs in `_id`; every document has
`merchant_id`; flags are ints 0/1; documents that emit events carry an outbox."""
from __future__ import annotations

import mongoengine as me

from siyu_kit.events.documents import OutboxDocument

class MerchantDoc(me.Document):
    id = me.StringField(primary_key=True)  # mch_…
    merchant_id = me.StringField(required=True)  # the same as _id, so every query can filter by it
    code = me.StringField(required=True)
    name = me.StringField(required=True)
    time_zone = me.StringField(required=True)
    config = me.DictField()
    version = me.IntField(default=1)
    created_at = me.DateTimeField()
    updated_ms = me.IntField()
    meta = {"collection": "merchants", "indexes": [{"fields": ["code"], "unique": True}]}


class ApiKeyDoc(me.Document):
    id = me.StringField(primary_key=True)  # key_…
    merchant_id = me.StringField(required=True)
    channel = me.StringField(required=True)
    key_hash = me.StringField(required=True)
    # What may be shown of the key (never the key): its first characters and last four.
    prefix = me.StringField()
    last4 = me.StringField()
    disabled = me.IntField(default=0)
    created_at = me.DateTimeField()
    meta = {"collection": "api_keys",
            "indexes": [{"fields": ["key_hash"], "unique": True}, {"fields": ["merchant_id", "channel"]}]}


class StaffUserDoc(me.Document):
    id = me.StringField(primary_key=True)  # stf_…
    merchant_id = me.StringField(required=True)
    username = me.StringField(required=True)
    password_hash = me.StringField(required=True)
    roles = me.ListField(me.StringField())
    disabled = me.IntField(default=0)
    # Bumped when the user's tokens must end (roles, password, disabled, logout).
    token_version = me.IntField(default=1)
    version = me.IntField(default=1)
    created_at = me.DateTimeField()
    updated_ms = me.IntField()
    meta = {"collection": "staff_users",
            "indexes": [{"fields": ["merchant_id", "username"], "unique": True}]}


class MemberDoc(OutboxDocument):
    id = me.StringField(primary_key=True)  # mem_…
    merchant_id = me.StringField(required=True)
    nickname = me.StringField(default="")
    avatar_url = me.StringField(default="")
    # Present only once verified. phone_key = merchant_id + ":" + phone gives a sparse unique
    # index per merchant (a compound sparse index would index every member).
    phone = me.StringField()
    phone_key = me.StringField()
    registered_channel = me.StringField()
    # The last four digits of the verified phone (member_phones), for the staff's search
    # (never the phone): written after each binding; the member-phone-suffix backfill wrote
    # it for phones bound before.
    phone_suffix = me.StringField()
    # The sum of the ledger's growth, kept for the staff's search by tier (the ledger is the
    # truth: it is recomputed after each entry). Set at registration; the member-growth
    # backfill set it on members stored before.
    growth = me.IntField()
    # How many growth entries of the ledger that sum counted: a sync writes only over a
    # smaller count, so a refund's lower sum is kept and a stale sum never wins.
    growth_entries = me.IntField()
    # Bumped when the member's tokens must end (logout). Absent on old members: 0.
    token_version = me.IntField()
    version = me.IntField(default=1)
    created_at = me.DateTimeField()
    meta = {"collection": "members",
            "indexes": [{"fields": ["merchant_id"]}, {"fields": ["outbox_pending"]},
                        {"fields": ["phone_key"], "unique": True, "sparse": True},
                        {"fields": ["merchant_id", "phone_suffix"]}]}


class UnionIdentityDoc(me.Document):
    """One person of a merchant: the WeChat unionid shared by all its channels."""
    id = me.StringField(primary_key=True)  # idn_…
    merchant_id = me.StringField(required=True)
    unionid = me.StringField(required=True)
    member_id = me.StringField(required=True)
    created_at = me.DateTimeField()
    meta = {"collection": "union_identities",
            "indexes": [{"fields": ["merchant_id", "unionid"], "unique": True}]}


class ChannelIdentityDoc(me.Document):
    """A channel's own id of a member (openid of the mini-program, of the H5 account …)."""
    id = me.StringField(primary_key=True)  # idn_…
    merchant_id = me.StringField(required=True)
    channel = me.StringField(required=True)
    openid = me.StringField(required=True)
    member_id = me.StringField(required=True)
    created_at = me.DateTimeField()
    meta = {"collection": "channel_identities",
            "indexes": [{"fields": ["merchant_id", "channel", "openid"], "unique": True},
                        {"fields": ["merchant_id", "member_id"]}]}


class PointsEntryDoc(OutboxDocument):
    """One ledger entry, unique per cause (merchant, source, source id, kind): replays add
    nothing. Entries from before the points account have no kind (each an order's
    earning); the account's movements carry their kind and what they changed
    (adapters/points_store.py). Their events travel in the account's outbox."""
    id = me.StringField(primary_key=True)  # pte_…
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    source = me.StringField(required=True)
    source_id = me.StringField(required=True)
    points = me.IntField(required=True)
    growth = me.IntField(default=0)
    frozen = me.IntField(default=0)
    frozen_until = me.DateTimeField()
    created_at = me.DateTimeField()
    kind = me.StringField()
    available = me.IntField()
    frozen_delta = me.IntField()
    held = me.IntField()
    owed = me.IntField()
    gross = me.IntField()
    returned = me.IntField()
    refunded = me.IntField()
    order_id = me.StringField()
    reason = me.StringField()
    actor_id = me.StringField()
    meta = {"collection": "points_entries",
            "indexes": [{"fields": ["merchant_id", "source", "source_id", "kind"], "unique": True},
                        {"fields": ["merchant_id", "member_id"]}, {"fields": ["outbox_pending"]},
                        {"fields": ["merchant_id", "member_id", "order_id"]}]}


class LoginAttemptsDoc(me.Document):
    """Failed staff logins in one window, per account or per client address. Not a
    merchant's document: it is counted before the merchant is known, by hashed subject."""
    id = me.StringField(primary_key=True)  # acct:<hash>:<window> or addr:<hash>:<window>
    failures = me.IntField(default=0)
    expires_at = me.DateTimeField()  # written at insert; MongoDB removes the document after it
    meta = {"collection": "login_attempts",
            "indexes": [{"fields": ["expires_at"], "expireAfterSeconds": 0}]}


class RefreshTokenDoc(me.Document):
    """One issued refresh token (its jti): ACTIVE until used once, USED or REVOKED after."""
    id = me.StringField(primary_key=True)  # rft_…
    merchant_id = me.StringField(required=True)
    subject_id = me.StringField(required=True)  # stf_… or mem_…
    state = me.StringField(required=True)
    created_at = me.DateTimeField()
    expires_at = me.DateTimeField()
    meta = {"collection": "refresh_tokens",
            "indexes": [{"fields": ["expires_at"], "expireAfterSeconds": 0}]}


class AddressBookDoc(me.Document):
    """One member's shipping addresses, whole: every change is one conditional write on
    `version`, so the book's limit and its single default hold under concurrent calls.
    Each address keeps its phone sealed (phone_sealed, opened only with the merchant id)
    and masked; the plain number is never stored."""
    id = me.StringField(primary_key=True)  # adb_…
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    # [{address_id, recipient, phone_sealed, phone_masked, province_code, province_name,
    #   city_code, city_name, district_code, district_name, detail, created_ms, version}]
    addresses = me.ListField(me.DictField())
    default_id = me.StringField(default="")
    # [[creation key, address id, request fingerprint]], oldest first, at most
    # domain.addresses.KEYS_KEPT; keys stored before fingerprints were kept have no third item.
    keys = me.ListField(me.ListField(me.StringField()))
    version = me.IntField(default=1)
    updated_ms = me.IntField()
    meta = {"collection": "address_books",
            "indexes": [{"fields": ["merchant_id", "member_id"], "unique": True}]}


class AuditEntryDoc(me.Document):
    """Who changed what (staff users, channel keys, tiers, onboarding); append-only, never a secret."""
    id = me.StringField(primary_key=True)  # aud_…
    merchant_id = me.StringField(required=True)
    actor_kind = me.StringField()
    actor_id = me.StringField()
    action = me.StringField(required=True)
    target_id = me.StringField()
    before = me.DictField()
    after = me.DictField()
    created_at = me.DateTimeField()
    meta = {"collection": "audit_entries",
            "indexes": [{"fields": ["merchant_id"]}, {"fields": ["merchant_id", "target_id"]}]}


class BackfillDoc(me.Document):
    """One backfill's progress over all merchants (not a merchant's document): the last id
    done, whether it reached the end, and which replica holds it until when."""
    id = me.StringField(primary_key=True)  # the backfill's name
    after_id = me.StringField(default="")
    done = me.IntField(default=0)
    holder = me.StringField(default="")
    # Epoch milliseconds: the store keeps numbers, not dates, exact in an update's $set.
    lease_until_ms = me.IntField(default=0)
    updated_ms = me.IntField()
    meta = {"collection": "backfills"}



# ---- points accounts ------------------------------------------------------------------------

class PointsAccountDoc(OutboxDocument):
    """A member's points account (services/member/domain/points_account.py): counters,
    lots by expiry day, frozen lots and holds by order, the causes applied and the ledger
    entries owed. Every movement is one conditional update of this document."""
    id = me.StringField(primary_key=True)  # "<merchant id>:<member id>"
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    balance = me.IntField(default=0)
    available = me.IntField(default=0)
    frozen = me.IntField(default=0)
    held = me.IntField(default=0)
    owed = me.IntField(default=0)
    lots = me.DictField()  # {"e20261231": points}
    frozen_lots = me.DictField()  # {order id: {points, key, unfreeze_ms}}
    holds = me.DictField()  # {order id: {points, takes: {lot key: points}}}
    done = me.DictField()  # {cause key: epoch ms applied}
    pending = me.DictField()  # {cause key: the ledger entry owed}
    pending_count = me.IntField(default=0)
    due_ms = me.IntField()  # the soonest a lot may expire (epoch ms)
    unfreeze_due_ms = me.IntField()  # the soonest a frozen lot may unfreeze
    unfreeze_lease_ms = me.IntField(default=0)  # the jobs' claims
    expiry_lease_ms = me.IntField(default=0)
    updated_ms = me.IntField()
    meta = {"collection": "points_accounts",
            "indexes": [{"fields": ["merchant_id"]}, {"fields": ["outbox_pending"]}, {"fields": ["pending_count"]},
                        {"fields": ["due_ms"]}, {"fields": ["unfreeze_due_ms"]}]}


ALL = (AuditEntryDoc, MerchantDoc, ApiKeyDoc, StaffUserDoc, MemberDoc, UnionIdentityDoc, ChannelIdentityDoc,
       PointsEntryDoc, LoginAttemptsDoc, RefreshTokenDoc, AddressBookDoc, BackfillDoc, PointsAccountDoc)


def ensure_indexes() -> None:
    for doc in ALL:
        if doc is PointsEntryDoc:
            _drop_points_index_without_kind()
        doc.ensure_indexes()


def _drop_points_index_without_kind() -> None:
    """The ledger was unique per (merchant, source, source id) before entries had kinds;
    that index would refuse an order's hold after its earning. Found by its key (index
    names differ between stores)."""
    ledger = PointsEntryDoc._get_collection()
    old = [("merchant_id", 1), ("source", 1), ("source_id", 1)]
    for name, info in ledger.index_information().items():
        if list(info["key"]) == old and info.get("unique"):
            ledger.drop_index(name)


def within(query: dict, field: str, low=None, below=None) -> None:
    """Narrows `query` to low <= field < below; a missing bound is left open."""
    bounds = {op: v for op, v in (("$gte", low), ("$lt", below)) if v is not None}
    if bounds:
        query[field] = bounds
