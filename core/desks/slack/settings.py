"""The Slack desk's settings: the app's token and signing secret, the channel, and how threads behave."""
from __future__ import annotations

import re
from dataclasses import dataclass

from core.desks.base import DeskSettings
from core.env import EnvReader
from core.errors import ConfigError

CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")


@dataclass(frozen=True)
class SlackSettings(DeskSettings):
    api_base: str = "https://slack.com/api"
    bot_token: str | None = None  # xoxb-…, the app's bot token
    signing_secret: str | None = None  # signs the Events API requests
    channel: str | None = None  # the channel's ID (C… or G…): every WeChat user gets a thread there
    note_prefix: str = "//"  # thread replies starting with it stay among agents
    thread_days: int = 7  # a user back after this many quiet days gets a new thread
    agent_names: bool = False  # prefix what the user gets with the agent's display name
    posts_per_minute: int = 60  # posts to the channel this relay allows itself (Slack: about one a second)

    required = {"bot_token": "SLACK_BOT_TOKEN", "signing_secret": "SLACK_SIGNING_SECRET",
                "channel": "SLACK_CHANNEL"}

    @classmethod
    def from_env(cls, env: EnvReader) -> SlackSettings:
        channel = env.str("SLACK_CHANNEL")
        if channel and not CHANNEL_ID.fullmatch(channel):
            raise ConfigError("SLACK_CHANNEL must be the channel's ID (C… or G…, in the channel's details), "
                              "not its name: events name channels by ID")
        return cls(
            api_base=env.url("SLACK_API_BASE", cls.api_base) or cls.api_base,
            bot_token=env.str("SLACK_BOT_TOKEN"), signing_secret=env.str("SLACK_SIGNING_SECRET"),
            channel=channel,
            note_prefix=env.str("SLACK_NOTE_PREFIX", cls.note_prefix) or cls.note_prefix,
            thread_days=env.int("SLACK_THREAD_DAYS", cls.thread_days),
            agent_names=env.flag("SLACK_AGENT_NAMES"),
            posts_per_minute=env.int("SLACK_POSTS_PER_MINUTE", cls.posts_per_minute),
        )
