"""The pace of posts to the channel: a burst of three, then one a second; a near turn is waited for, a far
one kept for its post, which is put back once with the time to it; Slack's Retry-After holds every post."""
from __future__ import annotations

import itertools

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


keys = (f"post-{n}" for n in itertools.count())


async def test_a_burst_then_one_a_second():
    clock = Clock()
    pace = Pace(60, clock, clock.sleep)
    for _ in range(6):
        await pace.turn(next(keys))
    assert clock.slept == [1.0, 1.0, 1.0]  # three at once, then each a second after the one before
    clock.now += 10  # quiet for a while: the burst is back
    for _ in range(3):
        await pace.turn(next(keys))
    assert clock.slept == [1.0, 1.0, 1.0]


async def test_a_far_turn_is_kept_for_its_post_which_is_put_back_once():
    clock, waits = Clock(), []

    async def wait(seconds: float) -> None:  # waits without time passing: the posts all come at once
        waits.append(round(seconds, 6))

    pace = Pace(60, clock, wait)
    for _ in range(3 + int(MAX_WAIT)):
        await pace.turn(next(keys))  # the burst, then turns 1 … MAX_WAIT seconds away
    with pytest.raises(RateLimited) as first:
        await pace.turn("late")
    with pytest.raises(RateLimited) as second:
        await pace.turn("later")
    assert (first.value.retry_after, second.value.retry_after) == pytest.approx((MAX_WAIT + 1, MAX_WAIT + 2))
    clock.now += MAX_WAIT + 1  # the outbox brings "late" back at its turn: it goes at once
    await pace.turn("late")
    await pace.turn("newcomer")  # after "later", whose turn is kept: 2 s from now
    assert waits == [1.0, 2.0, 3.0, 2.0]  # turns 4 to 6 of the burst, then the newcomer; "late" did not wait


async def test_retry_after_holds_every_post():
    clock = Clock()
    pace = Pace(60, clock, clock.sleep)
    pace.hold(2.5)
    await pace.turn(next(keys))
    assert clock.slept == [2.5]


async def test_a_faster_pace_for_channels_that_may_post_more():
    clock = Clock()
    pace = Pace(600, clock, clock.sleep)
    for _ in range(5):
        await pace.turn(next(keys))
    assert clock.slept == [0.1, 0.1]
