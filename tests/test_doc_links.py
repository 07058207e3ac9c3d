"""The README and docs/ hold together: relative links resolve, anchors name real
headings, every docs page is linked from the README, and every `make <target>` the
docs print exists in the Makefile."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
MAKE = re.compile(r"\bmake\s+([A-Za-z0-9][\w.-]*)")
MAKE_RULE = re.compile(r"^([A-Za-z0-9][\w.-]*)\s*:(?!=)", re.MULTILINE)


def _prose(text: str) -> str:
    """The text outside fenced code blocks, with inline code spans blanked."""
    return CODE_SPAN.sub("code", FENCE.sub("", text))


def _code(text: str) -> list[str]:
    """Fenced code blocks and inline code spans: where commands are printed."""
    blocks = [m.group(0) for m in FENCE.finditer(text)]
    spans = [m.group(2) for m in CODE_SPAN.finditer(FENCE.sub("", text))]
    return blocks + spans


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").replace("*", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(_prose(page.read_text())) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = ROOT / "README.md"
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(readme)}
    unlinked = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_every_make_target_named_in_the_docs_exists() -> None:
    targets = set(MAKE_RULE.findall((ROOT / "Makefile").read_text()))
    named = {
        (page.relative_to(ROOT).as_posix(), target)
        for page in PAGES
        for code in _code(page.read_text())
        for target in MAKE.findall(code)
    }
    assert {t for _, t in named} >= {"demo", "test"}  # the README's two commands are seen
    missing = sorted(f"{page}: make {t}" for page, t in named if t not in targets)
    assert not missing, f"not a target in the Makefile: {missing}"


def test_slug_follows_github() -> None:
    assert (
        slug("The deployment test (`make test-deploy`)") == "the-deployment-test-make-test-deploy"
    )
    assert slug("Scale on paper: 30k → 300k → 3M series") == "scale-on-paper-30k--300k--3m-series"
    assert slug("`airflow tasks clear` from the CLI") == "airflow-tasks-clear-from-the-cli"
