"""IP personas (人设): the rules for what a persona may hold."""
from __future__ import annotations

import re
from dataclasses import dataclass

from siyu_kit.errors import Violations

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

    def normalized(self) -> "PersonaFields":
        return PersonaFields(code=self.code, name=self.name.strip(), avatar_url=self.avatar_url.strip(),
                             expertise=self.expertise.strip(), bio=self.bio.strip(), tone=self.tone.strip())


@dataclass(frozen=True)
class Persona:
    persona_id: str
    version: int
    fields: PersonaFields


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
