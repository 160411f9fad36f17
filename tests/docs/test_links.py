"""Relative links of README.md and docs/*.md lead to files (and headings) that exist."""

from __future__ import annotations

import re

from tests.docs.doc_blocks import documents

LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(text: str) -> set[str]:
    return {
        re.sub(r"[^a-z0-9 _-]", "", title.strip().lower()).replace(" ", "-")
        for title in re.findall(r"^#+ (.+)$", text, flags=re.M)
    }


def test_relative_links_resolve() -> None:
    broken = []
    for path in documents():
        for target in LINK.findall(path.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.name}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
                broken.append(f"{path.name}: {target} (no such heading)")
    assert broken == []


def test_readme_is_short_and_links_the_docs() -> None:
    from tests.docs.doc_blocks import REPO, blocks

    readme = REPO / "README.md"
    assert len(readme.read_text().splitlines()) <= 40
    assert [b.code.strip() for b in blocks(readme)] == ["make run", "make test"]
    assert "docs/README.md" in readme.read_text()
