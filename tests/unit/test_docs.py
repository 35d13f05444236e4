"""The documents keep their promises: every variable the code reads is in the README's table and every
variable there is read; links point at files that exist; no document cites what the repository lacks."""
from __future__ import annotations

import re
from pathlib import Path

from core.config import variables_read
from core.desks import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
NOT_READ_BY_CODE = {"PORT"}  # read by the container's start command, not by the relay
DOCS = [p for p in ROOT.rglob("*.md") if not {".venv", "node_modules", ".pytest_cache"} & set(p.parts)]


def readme_table() -> list[str]:
    section = ROOT.joinpath("README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def documented_names() -> set[str]:
    return {name for row in readme_table() for name in re.findall(r"`([A-Z][A-Z0-9_]*\*?)`", row.split(" | ")[0])}


def test_every_variable_the_code_reads_is_documented_and_every_documented_one_is_read():
    read, documented = variables_read(), documented_names()
    patterns = [n[:-1] for n in documented if n.endswith("*")]
    missing = {v for v in read if v not in documented and not any(v.startswith(p) for p in patterns)}
    assert not missing, f"read by the code but not in the README's table: {sorted(missing)}"
    unread = {n for n in documented - NOT_READ_BY_CODE
              if not (n.endswith("*") and any(v.startswith(n[:-1]) for v in read)) and n not in read}
    assert not unread, f"in the README's table but never read: {sorted(unread)}"


def test_the_desk_choices_documented_are_the_desks_this_version_has():
    row = next(r for r in readme_table() if r.startswith("| `RELAY_DESK`"))
    offered = set(re.findall(r"`([a-z0-9]+)`", row.split(" | ")[1]))
    assert offered == set(REGISTRY)


def test_links_between_documents_point_at_files_that_exist():
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" not in target and not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not broken


def test_no_document_cites_what_the_repository_does_not_have():
    for path in [*DOCS, ROOT / "Dockerfile"]:
        text = path.read_text()
        assert not re.search(r"\bSPEC\b|SPEC\.md|\.\./shared", text), f"{path.relative_to(ROOT)} cites SPEC/shared"
        assert "/work/" not in text, f"{path.relative_to(ROOT)} names a machine path"
