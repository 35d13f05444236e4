"""The cloud function vendors the same pinned versions the service runs on, minus the web shell."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_function_requirements_match_the_service_pins():
    service = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    lines = (ROOT / "cloudfunctions" / "relay" / "requirements.txt").read_text().splitlines()
    function = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert function == {pin for pin in service if not pin.startswith(("quart", "hypercorn"))}
