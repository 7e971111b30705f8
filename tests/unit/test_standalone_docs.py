"""The code, its comments and the READMEs stand alone: none of them points at a design document
outside the repository, by path or by name. The needles are built from parts so that this file does
not name them itself."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE_PATH = ".." + "/" + "shared"
DOCUMENT_NAME = re.compile("(?<![a-z])" + "h" + "l" + "d" + "(?![a-z])", re.IGNORECASE)


def documents() -> list[Path]:
    sources = [path for folder in ("roombook", "bench", "tests") for path in sorted((ROOT / folder).rglob("*.py"))]
    return [ROOT / "README.md", ROOT / "bench" / "README.md", *sources]


def outside_references(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line that names the outside document or a path to it."""
    return [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if OUTSIDE_PATH in line or DOCUMENT_NAME.search(line)
    ]


def test_the_needles_find_what_they_look_for_and_nothing_else() -> None:
    name = "H" + "LD"
    assert outside_references(f"see the {name}\nfine\ntest_keys_follow_the_{name.lower()}()") == [
        (1, f"see the {name}"),
        (3, f"test_keys_follow_the_{name.lower()}()"),
    ]
    assert outside_references(f"`{OUTSIDE_PATH}/000.txt`") == [(1, f"`{OUTSIDE_PATH}/000.txt`")]
    assert outside_references("a threshold held by the shard; shared by every adapter; ../roombook") == []


def test_the_readmes_and_every_module_stand_alone() -> None:
    found = documents()
    assert len(found) > 100  # the walk reached the sources
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line}"
        for path in found
        for number, line in outside_references(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "\n".join(offenders)
