"""The README and docs/ are what a fresh clone is read through: every link in them must lead
to a file of the repository, and the README's first link to the domain overview."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# [text](target) and ![alt](target); a target ends at whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)")


def links(document: Path) -> list[str]:
    return LINK.findall(document.read_text(encoding="utf-8"))


def test_the_readme_first_link_is_the_domain_overview() -> None:
    assert links(REPO / "README.md")[0] == "docs/domain.md"
    assert (REPO / "docs" / "domain.md").is_file()


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_link_leads_to_a_file_inside_the_repository(document: Path) -> None:
    for target in links(document):
        assert "://" not in target, f"{target}: links stay inside the repository"
        path = (document.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(REPO), f"{target}: points outside the repository"
        assert path.exists(), f"{target}: no such file"
