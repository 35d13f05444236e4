"""Release files agree with the code: the licence with pyproject.toml, the sample cloudbaserc.json with
the function's handler, runtime, timer and the variables the relay reads (placeholders only)."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from core.config import variables_read

ROOT = Path(__file__).resolve().parents[2]
CLOUDBASERC = json.loads((ROOT / "cloudbaserc.json").read_text())
[FUNCTION] = CLOUDBASERC["functions"]


def test_the_licence_is_the_one_pyproject_names():
    licence = (ROOT / "LICENSE").read_text()
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == {"text": "MIT"}
    assert licence.startswith("MIT License\n")
    assert re.search(r"^Copyright \(c\) \d{4} the wechat-cs-relay authors$", licence, re.M)


def test_cloudbaserc_deploys_the_function_shell_as_built():
    assert (FUNCTION["handler"], FUNCTION["runtime"]) == ("index.main_handler", "Python3.11")
    assert FUNCTION["timeout"] >= 20  # a push delivers for 3 s; the timer drains what is left
    assert FUNCTION["installDependency"] is False  # CloudBase installs no Python dependencies: the zip has them
    assert FUNCTION["name"] == "relay" and CLOUDBASERC["functionRoot"] == "./dist/functions"


def test_cloudbaserc_has_the_timer_of_the_functions_config_json():
    config = json.loads((ROOT / "cloudfunctions" / "relay" / "config.json").read_text())
    assert FUNCTION["triggers"] == config["triggers"]


def test_cloudbaserc_variables_are_read_by_the_relay_and_hold_no_values():
    read = variables_read()
    for name, value in FUNCTION["envVariables"].items():
        assert name in read, f"{name} is not a variable the relay reads"
        assert value == f"{{{{env.{name}}}}}", f"{name} must be a placeholder filled from .env.local, not a value"
