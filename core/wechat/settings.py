"""WeChat's settings: the open API, how pushes are trusted, developer-server mode."""
from __future__ import annotations

import re
from dataclasses import dataclass

from core.env import EnvReader
from core.errors import ConfigError

PLACEHOLDER = "CHANGE-ME"  # container.config.json ships WX_PUSH_PATH with it: a committed path is no secret


@dataclass(frozen=True)
class WeChatSettings:
    api_base: str = "http://api.weixin.qq.com"
    push_trust: str = "header"  # "header", "network" or "signed" (developer-server pushes only)
    appid: str | None = None
    secret: str | None = None
    token: str | None = None
    aes_key: str | None = None
    push_path: str = "/"  # WX_PUSH_PATH: a secret path makes the push route unguessable

    @classmethod
    def from_env(cls, env: EnvReader) -> WeChatSettings:
        settings = cls(
            api_base=env.url("WX_API_BASE", cls.api_base) or cls.api_base,
            push_trust=env.choice("WX_PUSH_TRUST", ("header", "network", "signed"), cls.push_trust),
            appid=env.str("WX_APPID"),
            secret=env.str("WX_SECRET"),
            token=env.str("WX_TOKEN"),
            aes_key=env.aes_key("WX_AES_KEY", "EncodingAESKey"),
            push_path=env.str("WX_PUSH_PATH", "/") or "/",
        )
        if not re.fullmatch(r"/([A-Za-z0-9_\-./]{16,128})?", settings.push_path) or "//" in settings.push_path:
            raise ConfigError("WX_PUSH_PATH must be / or a path of 16 to 128 URL-safe characters after the /, "
                              "e.g. /wx/<32 random letters>")
        if PLACEHOLDER in settings.push_path:
            raise ConfigError("WX_PUSH_PATH still holds the placeholder from container.config.json: set a random "
                              "path of your own (the same in the message-push settings), or / with "
                              "WX_PUSH_TRUST=network when public access is off")
        if settings.secret and not settings.appid:
            raise ConfigError("WX_SECRET is set but WX_APPID is not: a stable_token needs both")
        if settings.aes_key and not (settings.token and settings.appid):
            raise ConfigError("WX_AES_KEY needs WX_TOKEN and WX_APPID (safe mode checks both)")
        return settings
