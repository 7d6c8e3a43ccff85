"""The watcher's retry policy (``retry_plan``), a pure function: no server, no clock."""

from __future__ import annotations

import pytest
from meshsync_k8s.client import ApiError
from meshsync_k8s.watcher import RetryPlan, Tuning, backoff_delay, next_attempt, retry_plan

TUNING = Tuning(backoff_base=0.5, backoff_max=4.0, slow_retry=60.0)


def plan(exc: ApiError, attempt: int = 0, *, listing: bool = False, rand: float = 1.0) -> RetryPlan:
    return retry_plan(exc, attempt, TUNING, listing=listing, rand=rand)


def test_a_first_expiry_relists_at_once() -> None:
    assert plan(ApiError(410, "Expired")) == RetryPlan(
        relist=True, delay=0.0, slow=False, attempt=1
    )
    # an ERROR event's Status or a continue token can say it without the 410
    assert plan(ApiError(500, "Expired")).relist is True
    assert plan(ApiError(200, "Gone")).delay == 0.0


def test_expired_again_right_away_backs_off_instead_of_spinning() -> None:
    again = plan(ApiError(410, "Expired"), attempt=1)
    assert again.relist is True and again.slow is False
    assert again.delay == 1.0  # the second step of 0.5 s doubling, no jitter at rand=1
    assert again.attempt == 2
    assert plan(ApiError(410, "Expired"), attempt=5).delay == 4.0  # capped


@pytest.mark.parametrize("code", [400, 401, 403, 404, 405, 406, 415, 422])
def test_codes_retrying_will_not_fix_are_slow_and_relist(code: int) -> None:
    for listing in (True, False):
        slow = plan(ApiError(code, "Nope"), attempt=3, listing=listing)
        assert slow == RetryPlan(relist=True, delay=60.0, slow=True, attempt=3)  # backoff kept


@pytest.mark.parametrize("code", [0, 408, 429, 500, 503, 504])
def test_transient_failures_back_off_and_resume_what_failed(code: int) -> None:
    watch = plan(ApiError(code, "Trouble"), attempt=0, listing=False)
    assert watch == RetryPlan(relist=False, delay=0.5, slow=False, attempt=1)  # resume the watch
    listed = plan(ApiError(code, "Trouble"), attempt=2, listing=True)
    assert listed == RetryPlan(relist=True, delay=2.0, slow=False, attempt=3)  # list again


def test_jitter_draw_spans_half_to_full_delay() -> None:
    low = plan(ApiError(503, "Unavailable"), attempt=2, rand=0.0).delay
    high = plan(ApiError(503, "Unavailable"), attempt=2, rand=1.0).delay
    assert (low, high) == (1.0, 2.0)


def test_backoff_attempt_is_bounded() -> None:
    attempt = 0
    for _ in range(100):
        attempt = next_attempt(attempt)
    assert attempt == 30
    assert backoff_delay(attempt, TUNING, 1.0) == TUNING.backoff_max  # no overflow, capped
