"""What the C4C desk needs from a tenant's social-media services, whichever API serves them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Profile:
    """A Social Media User Profile: `uuid` names it to the API in use, `id` is its number."""

    uuid: str
    id: str


@dataclass(frozen=True)
class Activity:
    """A Social Media Activity; `root_uuid` is the root of its thread (itself for a root)."""

    uuid: str
    id: str
    root_uuid: str
    profile_uuid: str = ""


class SocialMedia(Protocol):
    async def find_profile(self, openid: str) -> Profile | None: ...

    async def create_profile(self, openid: str) -> Profile: ...

    async def find_activity(self, message_id: str) -> Activity | None: ...

    async def create_activity(self, profile: Profile, message_id: str, text: str, root: Activity | None,
                              from_agent_side: bool = False) -> Activity: ...

    async def openid_of_activity(self, message_id: str) -> tuple[str, Activity] | None:
        """The account id (openid) of the user whose activity has this SocialMediaMessageID."""
        ...
