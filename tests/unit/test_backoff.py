"""default_backoff: exponential from one second, capped at an hour, half of it random."""

from __future__ import annotations

import pytest

from gendurable._definition import BACKOFF_CAP, default_backoff

SAMPLES = 2000


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (10, 512.0)])
def test_backoff_within_equal_jitter_bounds(attempt, ceiling):
    delays = [default_backoff(attempt) for _ in range(SAMPLES)]

    assert min(delays) >= ceiling / 2
    assert max(delays) <= ceiling


def test_backoff_doubles_per_attempt():
    for attempt in range(1, 12):
        lowest_next = min(default_backoff(attempt + 1) for _ in range(SAMPLES))
        highest = max(default_backoff(attempt) for _ in range(SAMPLES))
        assert lowest_next >= highest


@pytest.mark.parametrize("attempt", [13, 20, 100, 1025, 10**6])
def test_backoff_capped(attempt):
    delays = [default_backoff(attempt) for _ in range(SAMPLES)]

    assert min(delays) >= BACKOFF_CAP / 2
    assert max(delays) <= BACKOFF_CAP


def test_backoff_jittered():
    delays = {default_backoff(5) for _ in range(SAMPLES)}

    assert len(delays) > SAMPLES // 2


def test_backoff_spreads_over_range():
    delays = [default_backoff(5) for _ in range(SAMPLES)]

    assert min(delays) < 8 + 1
    assert max(delays) > 16 - 1


@pytest.mark.parametrize("attempt", [0, -3])
def test_backoff_before_first_attempt(attempt):
    delays = [default_backoff(attempt) for _ in range(SAMPLES)]

    assert min(delays) >= 0.5
    assert max(delays) <= 1.0
