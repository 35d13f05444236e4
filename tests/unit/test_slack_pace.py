"""The pace of posts to the channel: a burst of three, then one a second; a near turn is waited for, a far
one refused with the time to it; Slack's Retry-After holds every post."""
from __future__ import annotations

import pytest

from core.desks.slack.pace import MAX_WAIT, Pace, RateLimited


class Clock:
    def __init__(self) -> None:
        self.now, self.slept = 1000.0, []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


async def test_a_burst_then_one_a_second():
    clock = Clock()
    pace = Pace(60, clock, clock.sleep)
    for _ in range(6):
        await pace.turn()
    assert clock.slept == [1.0, 1.0, 1.0]  # three at once, then each a second after the one before
    clock.now += 10  # quiet for a while: the burst is back
    for _ in range(3):
        await pace.turn()
    assert clock.slept == [1.0, 1.0, 1.0]


async def test_a_far_turn_is_refused_with_the_time_to_it_and_reserves_nothing():
    clock = Clock()
    pace = Pace(60, clock, lambda seconds: _no_sleep())
    for _ in range(3 + int(MAX_WAIT)):
        await pace.turn()  # the burst, then turns 1 … MAX_WAIT seconds away (not slept here)
    with pytest.raises(RateLimited) as refused:
        await pace.turn()
    assert refused.value.retry_after == pytest.approx(MAX_WAIT + 1)
    with pytest.raises(RateLimited):
        await pace.turn()  # still as far: the refusal took no turn


async def test_retry_after_holds_every_post():
    clock = Clock()
    pace = Pace(60, clock, clock.sleep)
    pace.hold(2.5)
    await pace.turn()
    assert clock.slept == [2.5]


async def test_a_faster_pace_for_channels_that_may_post_more():
    clock = Clock()
    pace = Pace(600, clock, clock.sleep)
    for _ in range(5):
        await pace.turn()
    assert clock.slept == [0.1, 0.1]


async def _no_sleep() -> None:
    return None
