"""The README and docs/*.md are self-contained: every relative link, every path they cite
in code spans and every Markdown document they name exists in the repository.

A path is taken relative to the citing document's folder or to the repository root.
Paths under what `make` creates and .gitignore leaves out (`var/`, `gen/`, …), URL paths
(`/v1/…`), placeholders (`<service>`, `{name}`, `*`) and code blocks are not citations.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`([^`\s]+)`")
NAMED_DOCUMENT = re.compile(r"(?<![\w./`-])([\w./-]+\.md)\b")
FILE_SUFFIXES = (".md", ".py", ".proto", ".yaml", ".yml", ".toml", ".txt", ".json", ".cfg", ".ini")


def generated_dirs() -> tuple[str, ...]:
    lines = (ROOT / ".gitignore").read_text().splitlines()
    return tuple(line.strip().rstrip("/") + "/" for line in lines if line.strip().endswith("/"))


def looks_like_path(text: str) -> bool:
    if text.startswith(("/", "http:", "https:", "mailto:", "$", "-")):
        return False
    if any(mark in text for mark in "<>{}*…$=:@?"):
        return False
    return "/" in text or text.endswith(FILE_SUFFIXES)


def cited(document: Path) -> set[str]:
    """Paths the document cites: link targets, code spans that look like paths, *.md names."""
    text = FENCE.sub("", document.read_text())
    found = set()
    for target in LINK.findall(text):
        target = target.split("#", 1)[0]
        if target and not re.match(r"^[a-z][a-z0-9+.-]*:", target):
            found.add(target)
    found |= {span for span in CODE_SPAN.findall(text) if looks_like_path(span)}
    prose = CODE_SPAN.sub("", text)
    found |= {name for name in NAMED_DOCUMENT.findall(prose) if not name.startswith(("http", "www."))}
    skipped = generated_dirs()
    return {path for path in found if not path.startswith(skipped)}


def exists(document: Path, path: str) -> bool:
    return any((base / path).exists() for base in (document.parent, ROOT))


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: str(d.relative_to(ROOT)))
def test_every_cited_path_is_in_the_repository(document):
    missing = sorted(path for path in cited(document) if not exists(document, path))
    assert missing == [], f"{document.relative_to(ROOT)} cites what the repository does not hold: {missing}"


def test_the_scan_sees_links_code_spans_and_named_documents(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("See [the rules](../shared/x.md#top), `siyu_kit/config.py`, `var/bench/run`,\n"
                   "`/v1/orders`, `services/<name>/domain/` and engineering.md.\n"
                   "```\ncat not/cited.py\n```\n")
    assert cited(doc) == {"../shared/x.md", "siyu_kit/config.py", "engineering.md"}
