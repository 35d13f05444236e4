"""The Echat desk's settings: the open-API token and key, and how the hand-over looks."""
from __future__ import annotations

from dataclasses import dataclass

from core.desks.base import DeskSettings
from core.env import EnvReader
from core.errors import ConfigError

SYSTEM_NOTICE_NAMES = ("start", "busy", "noreply", "end", "invite")


@dataclass(frozen=True)
class EchatSettings(DeskSettings):
    token: str | None = None
    aes_key: str | None = None  # set: cipher mode (密文)
    appid: str | None = None
    chat_url: str | None = None  # Echat's H5 chat window, e.g. https://chat.echatsoft.com/visitor/mobile/chat.html?companyId=N
    chat_page: str | None = None  # or a Mini Program page whose web-view opens it, e.g. pages/echat/index
    handover_every: int = 600
    handover_title: str = "人工客服"
    handover_text: str = "点这里和人工客服继续聊，客服的回复也会发到这里。"
    handover_thumb_url: str | None = None  # set: the hand-over is a link card
    handover_quote: bool = False  # show the user's last words in the hand-over text
    system_notices: frozenset[str] = frozenset({"end"})

    required = {"token": "ECHAT_TOKEN"}

    @classmethod
    def from_env(cls, env: EnvReader) -> EchatSettings:
        aes_key, appid = env.aes_key("ECHAT_AES_KEY", "encodingAesKey from Echat's 开放API page"), env.str("ECHAT_APPID")
        if aes_key and not appid:
            raise ConfigError("ECHAT_AES_KEY needs ECHAT_APPID: cipher-mode pushes end with Echat's appId")
        raw = env.str("ECHAT_SYSTEM_NOTICES", "end") or "end"
        notices = frozenset(n.strip().lower() for n in raw.split(",") if n.strip())
        if notices - {"none", *SYSTEM_NOTICE_NAMES} or ("none" in notices and len(notices) > 1):
            raise ConfigError(f"ECHAT_SYSTEM_NOTICES must be none or a comma list of {', '.join(SYSTEM_NOTICE_NAMES)}")
        settings = cls(
            token=env.str("ECHAT_TOKEN"), aes_key=aes_key, appid=appid,
            chat_url=env.url("ECHAT_CHAT_URL"), chat_page=env.str("ECHAT_CHAT_PAGE"),
            handover_every=env.int("ECHAT_HANDOVER_EVERY", cls.handover_every),
            handover_title=env.str("ECHAT_HANDOVER_TITLE", cls.handover_title) or cls.handover_title,
            handover_text=env.str("ECHAT_HANDOVER_TEXT", cls.handover_text) or cls.handover_text,
            handover_thumb_url=env.url("ECHAT_HANDOVER_THUMB_URL"),
            handover_quote=env.flag("ECHAT_HANDOVER_QUOTE"),
            system_notices=notices - {"none"},
        )
        if settings.token and not (settings.chat_url or settings.chat_page):
            raise ConfigError("the echat desk needs ECHAT_CHAT_URL or ECHAT_CHAT_PAGE: the hand-over opens it")
        return settings
