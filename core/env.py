"""EnvReader: typed reads of environment variables, each refusal one line naming the variable.

`core.config` hands one reader to every settings section (its own and each desk's), so no other module
touches `os.environ`; the reader remembers every name asked for, which is how the documented variables
are checked against the ones the code reads."""
from __future__ import annotations

import re
from typing import Mapping

from core.errors import ConfigError


class EnvReader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.names: set[str] = set()  # every variable asked for, set or not

    def str(self, name: str, default: str | None = None) -> str | None:
        self.names.add(name)
        value = self.env.get(name, "").strip()
        return value or default

    def raw(self, name: str) -> str:
        """The value as set, spaces and all (a password); empty when unset."""
        self.names.add(name)
        return self.env.get(name, "")

    def int(self, name: str, default: int) -> int:
        raw = self.str(name)
        if raw is None:
            return default
        if not (raw.isascii() and raw.isdigit()) or int(raw) <= 0:
            raise ConfigError(f"{name} must be a positive whole number, not {raw!r}")
        return int(raw)

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        raw = self.str(name)
        if raw is None:
            return default
        if raw.lower() not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
        return raw.lower()

    def optional_choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        return self.choice(name, choices, "") or None

    def flag(self, name: str, default: bool = False) -> bool:
        """`on` or `off` (also true/false, yes/no, 1/0)."""
        raw = self.choice(name, ("on", "off", "true", "false", "yes", "no", "1", "0"), "on" if default else "off")
        return raw in ("on", "true", "yes", "1")

    def url(self, name: str, default: str | None = None) -> str | None:
        raw = self.str(name) or default
        if raw is not None and not re.match(r"https?://[^\s/]+", raw):
            raise ConfigError(f"{name} must be an http(s) URL")
        return raw.rstrip("/") if raw else raw

    def aes_key(self, name: str, what: str) -> str | None:
        """A 43-character EncodingAESKey (WeChat's and Echat's format)."""
        raw = self.str(name)
        if raw and not re.fullmatch(r"[A-Za-z0-9]{43}", raw):
            raise ConfigError(f"{name} must be the 43-character {what}")
        return raw
