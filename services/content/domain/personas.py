"""IP personas (人设): the rules for what a persona may hold, and the persona aggregate."""
from __future__ import annotations

import re
from dataclasses import dataclass

from siyu_kit.aggregate import Aggregate
from siyu_kit.errors import Violations
from siyu_kit.ids import is_id

CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NAME_MAX = 40
TEXT_MAX = 500
URL_MAX = 1024


@dataclass(frozen=True)
class PersonaFields:
    """What staff set on a persona; the merchant-chosen code identifies it."""
    code: str
    name: str
    avatar_url: str = ""
    expertise: str = ""
    bio: str = ""
    tone: str = ""
    featured_product_ids: tuple[str, ...] = ()  # shown on the persona's page, in order

    def normalized(self) -> "PersonaFields":
        return PersonaFields(code=self.code, name=self.name.strip(), avatar_url=self.avatar_url.strip(),
                             expertise=self.expertise.strip(), bio=self.bio.strip(), tone=self.tone.strip(),
                             featured_product_ids=tuple(self.featured_product_ids))


@dataclass
class Persona(Aggregate):
    """A persona of a merchant, identified by its code; `version` is the one it was read at."""
    id: str
    merchant_id: str
    version: int
    fields: PersonaFields
    updated_ms: int = 0
    # The GUIDE staff users who run it (assign_guides); staff edits never touch them.
    guide_ids: tuple[str, ...] = ()
    # Kept by one conditional increment per real follow or unfollow, never written here.
    follower_count: int = 0

    @classmethod
    def create(cls, persona_id: str, merchant_id: str, fields: PersonaFields, now_ms: int) -> "Persona":
        return cls(id=persona_id, merchant_id=merchant_id, version=1, fields=fields, updated_ms=now_ms)

    def revise(self, fields: PersonaFields, now_ms: int) -> bool:
        """Takes the new fields; False when they are the ones it has (nothing to save)."""
        if fields == self.fields:
            return False
        self.fields = fields
        self.updated_ms = now_ms
        return True


    def assign_guides(self, guide_ids: tuple[str, ...], now_ms: int) -> bool:
        """Replaces the guides; False when they are the ones it has."""
        if guide_ids == self.guide_ids:
            return False
        self.guide_ids = guide_ids
        self.updated_ms = now_ms
        return True


def check_code(code: str, v: Violations, field: str = "code") -> None:
    v.check(bool(CODE.match(code or "")), field, "1 to 64 characters of A-Z, a-z, 0-9, _ or -")


def check_persona(f: PersonaFields, v: Violations) -> None:
    check_code(f.code, v)
    v.check(1 <= len(f.name) <= NAME_MAX, "name", f"1 to {NAME_MAX} characters")
    v.check(len(f.avatar_url) <= URL_MAX, "avatar_url", f"at most {URL_MAX} characters")
    if f.avatar_url:
        v.check(f.avatar_url.startswith(("https://", "http://")), "avatar_url", "an http(s) URL")
    for name, value in (("expertise", f.expertise), ("bio", f.bio), ("tone", f.tone)):
        v.check(len(value) <= TEXT_MAX, name, f"at most {TEXT_MAX} characters")
    check_ids(f.featured_product_ids, "prd", "featured_product_ids", FEATURED_MAX, v)


FEATURED_MAX = 20
GUIDES_MAX = 20


def check_ids(ids: tuple[str, ...], prefix: str, field: str, most: int, v: Violations) -> None:
    """A list of distinct `prefix`_ ids, at most `most`."""
    v.check(len(ids) <= most, field, f"at most {most}")
    seen: set[str] = set()
    for index, value in enumerate(ids):
        if not is_id(value, prefix):
            v.add(f"{field}[{index}]", f"a {prefix}_ id")
        elif value in seen:
            v.add(f"{field}[{index}]", "listed twice")
        seen.add(value)
