"""WeChat's settings: the open API, how pushes are trusted, developer-server mode."""
from __future__ import annotations

from dataclasses import dataclass

from core.env import EnvReader
from core.errors import ConfigError


@dataclass(frozen=True)
class WeChatSettings:
    api_base: str = "http://api.weixin.qq.com"
    push_trust: str = "header"  # "header", "network" or "signed" (developer-server pushes only)
    appid: str | None = None
    secret: str | None = None
    token: str | None = None
    aes_key: str | None = None

    @classmethod
    def from_env(cls, env: EnvReader) -> WeChatSettings:
        settings = cls(
            api_base=env.url("WX_API_BASE", cls.api_base) or cls.api_base,
            push_trust=env.choice("WX_PUSH_TRUST", ("header", "network", "signed"), cls.push_trust),
            appid=env.str("WX_APPID"),
            secret=env.str("WX_SECRET"),
            token=env.str("WX_TOKEN"),
            aes_key=env.aes_key("WX_AES_KEY", "EncodingAESKey"),
        )
        if settings.secret and not settings.appid:
            raise ConfigError("WX_SECRET is set but WX_APPID is not: a stable_token needs both")
        if settings.aes_key and not (settings.token and settings.appid):
            raise ConfigError("WX_AES_KEY needs WX_TOKEN and WX_APPID (safe mode checks both)")
        return settings
