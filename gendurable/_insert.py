"""Unsaved inserts and the validation of their options, before anything is written."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from .errors import InvalidOption
from .status import LIVE, Status

DEFAULT_SCOPE: tuple[str, ...] = tuple(status.value for status in LIVE)

# The maximum countdown, expiry, timeout or outcome delay: 1000 years. That is far beyond any
# real schedule, and far inside what PostgreSQL's interval and timestamptz types can store.
MAX_SECONDS = 1000 * 365 * 86400.0
# max_attempts and weight are PostgreSQL integer (int4) columns.
MAX_INT4 = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class Insert:
    """An instance ready to be written: ``job.new(...)`` builds one, ``app.insert_all`` writes it."""

    fsm: str
    step: str
    state: Any
    queue: str
    priority: int
    max_attempts: int
    timeout: float | None = None
    delay: float = 0.0
    run_at: datetime | None = None
    expires_at: datetime | None = None
    expires_in: float | None = None
    correlation_key: str | None = None
    correlation_scope: tuple[str, ...] = DEFAULT_SCOPE
    concurrency_key: str | None = None
    rate_limit: str | None = None
    rate_partition: str | None = None
    weight: int = 1
    parent_id: int | None = None


def check_text(name: str, value: object) -> str:
    """Accept a non-empty string that PostgreSQL can store (no NUL character)."""
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise InvalidOption(
            f"{name} must be a non-empty string without NUL characters, got {value!r}"
        )
    return value


def check_queue_name(queue: object) -> str:
    return check_text("queue", queue)


def check_rate_limit(rate_limit: object) -> str | None:
    """Reject rate limits, which this version does not enforce: accepting one would be a lie."""
    if rate_limit is None:
        return None
    raise InvalidOption(
        f"rate_limit={rate_limit!r} is not supported by this version of gendurable, which does "
        "not enforce rate limits; remove it (a concurrency_key or a queue's global_limit bounds "
        "how much runs at once)"
    )


def check_priority(priority: object) -> int:
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 9:
        raise InvalidOption(
            f"priority must be an integer from 0 (most urgent) to 9, got {priority!r}"
        )
    return priority


def check_count(name: str, value: object) -> int:
    """Accept an integer from 1 to the largest PostgreSQL integer."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_INT4:
        raise InvalidOption(f"{name} must be an integer from 1 to {MAX_INT4}, got {value!r}")
    return value


def check_max_attempts(max_attempts: object) -> int:
    return check_count("max_attempts", max_attempts)


def check_weight(weight: object) -> int:
    """Accept only the default weight: weights apply to rate limits, which this version lacks."""
    weight = check_count("weight", weight)
    if weight != 1:
        raise InvalidOption(
            f"weight={weight!r} is not supported by this version of gendurable: a weight is what "
            "a row takes from a rate limit, and rate limits are not enforced; remove it"
        )
    return weight


def check_seconds(name: str, value: object, *, positive: bool = False) -> float | None:
    """Accept seconds or a timedelta up to ``MAX_SECONDS``; reject negatives (and zero when
    ``positive``), NaN and infinity."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidOption(f"{name} must be seconds or a timedelta, got {value!r}")
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        raise InvalidOption(
            f"{name} must be a finite number of seconds up to {MAX_SECONDS:.0f} (1000 years), "
            f"got {value!r}"
        )
    if seconds < 0 or (positive and seconds == 0):
        bound = "greater than 0" if positive else "0 or more"
        raise InvalidOption(f"{name} must be {bound}, got {value!r}")
    return seconds


def check_aware(name: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidOption(f"{name} must be a timezone-aware datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidOption(
            f"{name} must be timezone-aware, got the naive datetime {value!r}; attach a zone, "
            "for example datetime.now(timezone.utc) or value.replace(tzinfo=ZoneInfo('Europe/Paris'))"
        )
    return value


def check_scope(scope: object) -> tuple[str, ...]:
    if scope is None:
        return DEFAULT_SCOPE
    if isinstance(scope, str) or not isinstance(scope, Sequence | set | frozenset):
        raise InvalidOption(f"correlation_scope must be a list of statuses, got {scope!r}")
    valid = [status.value for status in Status]
    for status in scope:
        if status not in valid:
            raise InvalidOption(
                f"correlation_scope contains {status!r}, which is not a status; use some of {valid}"
            )
    return tuple(str(status) for status in scope)


def key_value(
    name: str, key: object, arguments: Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]
) -> str | None:
    """Resolve a correlation or concurrency key given as a string or a callable of the arguments."""
    if key is None:
        return None
    if callable(key):
        args, kwargs = arguments()
        key = key(*args, **kwargs)
        if key is None:
            return None
    if not isinstance(key, str) or not key or "\x00" in key:
        raise InvalidOption(
            f"{name} must be a non-empty string without NUL characters, or return one, got {key!r}"
        )
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidOption(
            f"{name} is {len(key)} characters long, more than {MAX_KEY_LENGTH}; a unique index "
            f"holds it, so use a short business id or a hash (got {key[:40]!r}...)"
        )
    return key


# Keys go into unique B-tree indexes, whose entries cannot pass about 2,700 bytes.
MAX_KEY_LENGTH = 500


def schedule(countdown: object, eta: object) -> tuple[float, datetime | None]:
    """Turn ``countdown`` or ``eta`` into (delay in seconds, absolute time or None)."""
    if countdown is not None and eta is not None:
        raise InvalidOption(
            f"pass countdown or eta, not both (got countdown={countdown!r}, eta={eta!r})"
        )
    if eta is not None:
        return 0.0, check_aware("eta", eta)
    return check_seconds("countdown", countdown) or 0.0, None


def expiry(expires: object) -> tuple[float | None, datetime | None]:
    """Turn ``expires`` (seconds, a timedelta or an aware datetime) into (delay, absolute)."""
    if expires is None:
        return None, None
    if isinstance(expires, datetime):
        return None, check_aware("expires", expires)
    return check_seconds("expires", expires), None
