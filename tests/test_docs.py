"""The documentation's generated pages agree with their sources (the parser, the shipped
recipes), and every page of docs/ is in the site's navigation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests_support import script

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    return script("docs/generate.py")


@pytest.mark.parametrize("page", ["cli.md", "recipes.md"])
def test_generated_pages_match_their_sources(page):
    made = _generator().PAGES[page]()
    assert (ROOT / "docs" / page).read_text() == made, \
        f"docs/{page} is stale: run `python docs/generate.py`"


def test_the_cli_page_names_every_command_and_option():
    from specrobust.cli import build_parser

    page = (ROOT / "docs" / "cli.md").read_text()
    for name, command in _generator()._commands(build_parser()):
        assert f"## specrobust {name}\n" in page
        for action in command._actions:
            for option in action.option_strings:
                assert option in page, (name, option)


def test_every_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w-]+\.md)\s*$", nav, flags=re.MULTILINE))
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages == listed


def test_the_readme_stays_a_front_page():
    readme = (ROOT / "README.md").read_text().splitlines()
    assert len(readme) <= 150
    assert readme[3].startswith("make demo") and readme[4].startswith("make test")
