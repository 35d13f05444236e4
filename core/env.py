"""EnvReader: typed reads of environment variables, each refusal one line naming the variable.

`core.config` hands one reader to every settings section (its own and each desk's), so no other module
touches `os.environ`; the reader remembers every name asked for, which is how the documented variables
are checked against the ones the code reads."""
from __future__ import annotations

import builtins
import re
from collections.abc import Mapping

from core.errors import ConfigError


class EnvReader:
    def __init__(self, env: Mapping[builtins.str, builtins.str]) -> None:
        self.env = env
        self.names: set[builtins.str] = set()  # every variable asked for, set or not

    def str(self, name: builtins.str, default: builtins.str | None = None) -> builtins.str | None:
        self.names.add(name)
        value = self.env.get(name, "").strip()
        return value or default

    def raw(self, name: builtins.str) -> builtins.str:
        """The value as set, spaces and all (a password); empty when unset."""
        self.names.add(name)
        return self.env.get(name, "")

    def int(self, name: builtins.str, default: int) -> int:
        raw = self.str(name)
        if raw is None:
            return default
        if not (raw.isascii() and raw.isdigit()) or int(raw) <= 0:
            raise ConfigError(f"{name} must be a positive whole number, not {raw!r}")
        return int(raw)

    def choice(self, name: builtins.str, choices: tuple[builtins.str, ...], default: builtins.str) -> builtins.str:
        raw = self.str(name)
        if raw is None:
            return default
        if raw.lower() not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
        return raw.lower()

    def optional_choice(self, name: builtins.str, choices: tuple[builtins.str, ...]) -> builtins.str | None:
        return self.choice(name, choices, "") or None

    def flag(self, name: builtins.str, default: bool = False) -> bool:
        """`on` or `off` (also true/false, yes/no, 1/0)."""
        raw = self.choice(name, ("on", "off", "true", "false", "yes", "no", "1", "0"), "on" if default else "off")
        return raw in ("on", "true", "yes", "1")

    def url(self, name: builtins.str, default: builtins.str | None = None) -> builtins.str | None:
        raw = self.str(name) or default
        if raw is not None and not re.match(r"https?://[^\s/]+", raw):
            raise ConfigError(f"{name} must be an http(s) URL")
        return raw.rstrip("/") if raw else raw

    def aes_key(self, name: builtins.str, what: builtins.str) -> builtins.str | None:
        """A 43-character EncodingAESKey (WeChat's and Echat's format)."""
        raw = self.str(name)
        if raw and not re.fullmatch(r"[A-Za-z0-9]{43}", raw):
            raise ConfigError(f"{name} must be the 43-character {what}")
        return raw
