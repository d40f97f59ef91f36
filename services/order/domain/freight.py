"""A merchant's freight template: what shipping costs to where.

Rules are chosen by the shipping address's region (GB/T 2260 codes): a rule naming the
address's city wins over one naming its province; an address no rule names, or an order
without an address, takes the default rule. A region the template excludes is refused
(REGION_NOT_SHIPPED) before anything is reserved. A rule charges for the first units (or
grams) and for each further step of units (or grams). The fee is waived when the goods
amount after discounts reaches `free_over`, or when the member's tier is one the template
ships free to. A merchant without a template pays its flat order settings
(shipping_fee / free_shipping_over)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum

from siyu_kit.aggregate import Aggregate
from siyu_kit.errors import FailedPrecondition
from siyu_kit.money import MAX_AMOUNT, amount_ok

MAX_RULES = 50
MAX_REGIONS_PER_RULE = 100
MAX_EXCLUDED = 100
MAX_RULE_NAME = 40
MAX_UNITS = 1_000_000  # units or grams a rule may count in one step
TIERS = ("REGULAR", "SILVER", "GOLD", "BLACK_GOLD")


class Basis(str, Enum):
    """What a rule counts: the order's units, or its weight in grams."""
    UNITS = "UNITS"
    WEIGHT = "WEIGHT"


@dataclass(frozen=True)
class Destination:
    """Where an order ships: its region codes; all empty when the order has no address."""
    province_code: str = ""
    city_code: str = ""
    district_code: str = ""

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(c for c in (self.district_code, self.city_code, self.province_code) if c)


NOWHERE = Destination()


@dataclass(frozen=True)
class ShippingAddress:
    """The order's copy of the address it ships to, as it was when the order was placed.
    The phone is kept sealed (only the shop's owner and operators see it in full, when
    shipping) and masked (what the member and a guide see)."""
    address_id: str
    recipient: str
    phone_masked: str
    phone_sealed: str
    province_code: str
    city_code: str
    district_code: str
    province_name: str = ""
    city_name: str = ""
    district_name: str = ""
    detail: str = ""

    @property
    def destination(self) -> Destination:
        return Destination(self.province_code, self.city_code, self.district_code)

    def masked(self) -> "ShippingAddress":
        """The address as a guide sees it: the recipient's first character then "*", the
        phone masked, the detail hidden; the regions stay (where an order goes, not to whom)."""
        return replace(self, recipient=mask_name(self.recipient), phone_sealed="", detail="")


def mask_phone(phone: str) -> str:
    """138****8000: the first three and last four digits."""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "*" * len(phone)


def mask_name(name: str) -> str:
    """张*: the first character, then one "*" (none for an empty name)."""
    return name[:1] + "*" if name else ""


@dataclass(frozen=True)
class FreightRule:
    """First `first` units (or grams) for `first_fee`, each further `additional` (or part
    of it) for `additional_fee`. `regions`: the province, city or district codes it
    covers; the default rule covers none."""
    name: str
    first: int
    first_fee: int
    additional: int = 1
    additional_fee: int = 0
    basis: Basis = Basis.UNITS
    regions: tuple[str, ...] = ()

    def fee(self, count: int) -> int:
        if count <= 0:
            return 0
        if count <= self.first:
            return self.first_fee
        steps = -(-(count - self.first) // max(self.additional, 1))  # a started step is a step
        return self.first_fee + steps * self.additional_fee

    def describe(self) -> str:
        unit = "g" if self.basis == Basis.WEIGHT else (" unit" if self.first == 1 else " units")
        more_unit = "g" if self.basis == Basis.WEIGHT else (" unit" if self.additional == 1 else " units")
        label = self.name or "default"
        return (f"{label}: first {self.first}{unit} {yuan(self.first_fee)} + {yuan(self.additional_fee)} "
                f"per {self.additional}{more_unit} more")


@dataclass(frozen=True)
class FreightCharge:
    """The fee and the rule that set it, as the quote's shipping step shows it."""
    fee: int
    rule: str


def yuan(amount: int) -> str:
    """Fen as the shop shows them: ¥8, ¥8.50."""
    whole, fen = divmod(amount, 100)
    return f"¥{whole}" if not fen else f"¥{whole}.{fen:02d}"


def is_region_code(code: str) -> bool:
    """A GB/T 2260 code has six digits."""
    return len(code) == 6 and code.isdigit()


@dataclass
class FreightTemplate(Aggregate):
    merchant_id: str
    version: int
    default_rule: FreightRule
    rules: tuple[FreightRule, ...] = ()
    # Regions not shipped to (province, city or district codes).
    excluded_regions: tuple[str, ...] = ()
    # The goods amount after discounts from which shipping is free; 0: never.
    free_over: int = 0
    # Member tiers shipped free whatever the amount.
    free_shipping_tiers: tuple[str, ...] = ()
    updated_at: datetime | None = None

    @property
    def id(self) -> str:  # one template per merchant
        return self.merchant_id

    def rule_for(self, to: Destination) -> FreightRule:
        """The most specific rule naming the destination (district, then city, then
        province), else the default rule. REGION_NOT_SHIPPED for an excluded region."""
        excluded = set(self.excluded_regions)
        if any(code in excluded for code in to.codes):
            raise FailedPrecondition("the merchant does not ship to this region", reason="REGION_NOT_SHIPPED")
        for code in to.codes:
            for rule in self.rules:
                if code in rule.regions:
                    return rule
        return self.default_rule

    def charge(self, to: Destination, units: int, grams: int, goods_amount: int, tier: str) -> FreightCharge:
        """What shipping costs for this order: refusal first, then the waivers, then the rule."""
        rule = self.rule_for(to)
        if tier and tier in self.free_shipping_tiers:
            return FreightCharge(0, f"tier benefit: free shipping for {tier}")
        if self.free_over > 0 and goods_amount >= self.free_over:
            return FreightCharge(0, f"free over {yuan(self.free_over)}")
        count = grams if rule.basis == Basis.WEIGHT else units
        return FreightCharge(rule.fee(count), rule.describe())

    def replace_with(self, wanted: "FreightTemplate", now: datetime) -> None:
        """Staff put a whole new template; the version the repository checks is the one read."""
        self.default_rule = wanted.default_rule
        self.rules = wanted.rules
        self.excluded_regions = wanted.excluded_regions
        self.free_over = wanted.free_over
        self.free_shipping_tiers = wanted.free_shipping_tiers
        self.updated_at = now


def violations(t: FreightTemplate, prefix: str = "template.") -> list[tuple[str, str]]:
    """(field, description) for every value out of bounds; field names follow the API."""
    found: list[tuple[str, str]] = []

    def check(ok: bool, name: str, description: str) -> None:
        if not ok:
            found.append((prefix + name, description))

    def check_rule(rule: FreightRule, name: str, regional: bool) -> None:
        check(len(rule.name) <= MAX_RULE_NAME, f"{name}.name", f"at most {MAX_RULE_NAME} characters")
        check(1 <= rule.first <= MAX_UNITS, f"{name}.first", f"1..{MAX_UNITS}")
        check(1 <= rule.additional <= MAX_UNITS, f"{name}.additional", f"1..{MAX_UNITS}")
        check(amount_ok(rule.first_fee), f"{name}.first_fee", f"0..{MAX_AMOUNT}")
        check(amount_ok(rule.additional_fee), f"{name}.additional_fee", f"0..{MAX_AMOUNT}")
        if regional:
            check(1 <= len(rule.regions) <= MAX_REGIONS_PER_RULE, f"{name}.regions",
                  f"1..{MAX_REGIONS_PER_RULE} region codes")
            for j, code in enumerate(rule.regions):
                check(is_region_code(code), f"{name}.regions[{j}]", "a six-digit GB/T 2260 code")
        else:
            check(not rule.regions, f"{name}.regions", "the default rule covers every region no rule names")

    check_rule(t.default_rule, "default_rule", False)
    check(len(t.rules) <= MAX_RULES, "rules", f"at most {MAX_RULES}")
    seen: dict[str, int] = {}
    for i, rule in enumerate(t.rules[:MAX_RULES]):
        check_rule(rule, f"rules[{i}]", True)
        for code in rule.regions:
            if code in seen and seen[code] != i:
                check(False, f"rules[{i}].regions", f"{code} is already in rules[{seen[code]}]")
            seen.setdefault(code, i)
    check(len(t.excluded_regions) <= MAX_EXCLUDED, "excluded_regions", f"at most {MAX_EXCLUDED}")
    for j, code in enumerate(t.excluded_regions[:MAX_EXCLUDED]):
        check(is_region_code(code), f"excluded_regions[{j}]", "a six-digit GB/T 2260 code")
        check(code not in seen, f"excluded_regions[{j}]", f"{code} is priced by a rule; exclude it or price it")
    check(amount_ok(t.free_over), "free_over", f"0..{MAX_AMOUNT}")
    for j, tier in enumerate(t.free_shipping_tiers):
        check(tier in TIERS, f"free_shipping_tiers[{j}]", f"one of {', '.join(TIERS)}")
    return found
