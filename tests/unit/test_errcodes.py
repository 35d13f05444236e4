"""core.wechat.errcodes.ACTIONS agrees with fixtures/wechat/errors.json, code for code."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.wechat.errcodes import ACTIONS, action

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "wechat"
ERRORS = {int(code): entry for code, entry in json.loads((FIXTURES / "errors.json").read_bytes()).items()}


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_fixture_code_has_the_same_action(code):
    assert ACTIONS.get(code) == ERRORS[code]["action"]
    assert action(code) == ERRORS[code]["action"]


def test_actions_has_no_code_the_fixture_lacks():
    assert set(ACTIONS) - set(ERRORS) == set()


def test_fixture_is_not_empty():
    assert len(ERRORS) >= 20 and 45015 in ERRORS and -1 in ERRORS


@pytest.mark.parametrize("code", [99999, 40002, 1, -2])
def test_unknown_code_is_config_error(code):
    assert code not in ERRORS
    assert action(code) == "config_error"
