"""fal's retry rules (gateway/retries.py), case by case: what fal's docs on retries say of each status,
header and setting (docs/fal-conformance.md, "Retries")."""

from __future__ import annotations

import json

import pytest

from fal_notebook import wire
from fal_notebook.config import RetryEntry
from fal_notebook.gateway.retries import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    DISCONNECTED,
    INCOMPLETE,
    MAX_ATTEMPTS,
    TIMED_OUT,
    Attempt,
    Policy,
    backoff,
    decide,
    parse_budgets,
    request_budgets,
)
from fal_notebook.wire import RetryCondition

DEFAULT = Policy()


def first(attempt: Attempt, *, policy: Policy = DEFAULT, request: dict | None = None, **kwargs):
    """The decision after the first attempt of a request."""
    return decide(attempt, request_headers=request or {}, policy=policy, attempts=1, failures={}, **kwargs)


@pytest.mark.parametrize(
    ("attempt", "condition"),
    [
        (Attempt(503), RetryCondition.SERVER_ERROR),
        (Attempt(504), RetryCondition.SERVER_ERROR),  # the app's 504 is a server error, not a timeout
        (Attempt(503, failure=INCOMPLETE), RetryCondition.SERVER_ERROR),
        (Attempt(504, failure=TIMED_OUT), RetryCondition.TIMEOUT),
        (Attempt(503, failure=DISCONNECTED), RetryCondition.CONNECTION_ERROR),
    ],
)
def test_each_retry_condition_is_retried_by_default(attempt, condition):
    decision = first(attempt)
    assert decision.retry and decision.condition == condition
    assert decision.delay == BACKOFF_BASE


@pytest.mark.parametrize("status", [200, 201, 302, 400, 404, 422, 429, 499, 500, 502])
def test_other_answers_are_final(status):
    decision = first(Attempt(status))
    assert not decision.retry and decision.condition is None
    assert f"status {status} is not retried" == decision.reason


def test_sync_calls_are_never_retried():
    assert not first(Attempt(503), queued=False).retry
    assert not first(Attempt(500, {"X-Fal-Needs-Retry": "1"}), queued=False).retry


@pytest.mark.parametrize("value", ["1", "true", "yes", "TRUE", " 1 "])
def test_no_retry_from_the_caller_wins_over_everything(value):
    request = {"x-fal-no-retry": value, wire.RETRY_CONFIG: json.dumps({"server_error": {"retries": 5}})}
    assert not first(Attempt(503), request=request).retry
    assert not first(Attempt(500, {"X-Fal-Needs-Retry": "1"}), request=request).retry


@pytest.mark.parametrize("value", ["0", "false", "", "no"])
def test_no_retry_with_another_value_changes_nothing(value):
    assert first(Attempt(503), request={"X-Fal-No-Retry": value}).retry


def test_needs_retry_forces_a_retry_of_a_5xx_or_429_even_when_skipped():
    skip_all = Policy(skip=frozenset(wire.RetryCondition))
    for status in (500, 502, 429):
        decision = first(Attempt(status, {"x-fal-needs-retry": "1"}), policy=skip_all)
        assert decision.retry and decision.condition == RetryCondition.SERVER_ERROR


def test_needs_retry_prevents_a_retry_of_a_503():
    decision = first(Attempt(503, {"X-Fal-Needs-Retry": "0"}))
    assert not decision.retry and "X-Fal-Needs-Retry: 0" in decision.reason
    assert decision.stop_runner  # still a 503


@pytest.mark.parametrize("status", [200, 400, 422, 302])
def test_needs_retry_is_ignored_outside_5xx_and_429(status):
    assert not first(Attempt(status, {"X-Fal-Needs-Retry": "1"})).retry


def test_skip_retry_conditions_skips_only_their_condition():
    policy = Policy(skip=frozenset({RetryCondition.TIMEOUT}))
    assert not first(Attempt(504, failure=TIMED_OUT), policy=policy).retry
    assert first(Attempt(504), policy=policy).retry  # the app's 504: server_error
    policy = Policy(skip=frozenset({RetryCondition.SERVER_ERROR}))
    assert not first(Attempt(504), policy=policy).retry
    assert first(Attempt(504, failure=TIMED_OUT), policy=policy).retry


def test_budgets_count_retries_after_the_first_attempt_per_condition():
    policy = Policy(budgets={RetryCondition.SERVER_ERROR: 2})
    after = [
        decide(
            Attempt(503),
            request_headers={},
            policy=policy,
            attempts=n,
            failures={RetryCondition.SERVER_ERROR: n - 1},
        )
        for n in (1, 2, 3)
    ]
    assert [d.retry for d in after] == [True, True, False]
    assert "budget of 2 retries is spent" in after[-1].reason
    other = decide(Attempt(503, failure=DISCONNECTED), request_headers={}, policy=policy, attempts=3, failures={})
    assert other.retry  # connection_error has its own budget


def test_a_zero_budget_means_one_attempt():
    assert not first(Attempt(503), policy=Policy(budgets={RetryCondition.SERVER_ERROR: 0})).retry


def test_the_callers_retry_config_overrides_the_apps_for_the_owner_only():
    policy = Policy(budgets={RetryCondition.SERVER_ERROR: 5})
    request = {"X-Fal-Retry-Config": json.dumps({"server_error": {"retries": 0}})}
    assert not first(Attempt(503), policy=policy, request=request).retry
    assert first(Attempt(503), policy=policy, request=request, owner=False).retry
    request = {"X-Fal-Retry-Config": json.dumps({"timeout": {"retries": 0}})}
    assert first(Attempt(503), policy=Policy(budgets={RetryCondition.SERVER_ERROR: 0}), request=request).retry is False
    assert first(Attempt(503), request=request).retry  # the omitted condition keeps the default


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        '{"server_error": 0}',
        '{"sometimes": {"retries": 0}}',
        '{"server_error": {"retries": "0"}}',
    ],
)
def test_an_invalid_retry_config_is_ignored(raw):
    assert request_budgets({"x-fal-retry-config": raw}) == {}
    assert first(Attempt(503), request={"X-Fal-Retry-Config": raw}).retry


def test_budgets_parse_the_object_form_only():
    assert parse_budgets({"timeout": {"retries": 0}, "server_error": RetryEntry(retries=3), "x": {"retries": 1}}) == {
        RetryCondition.TIMEOUT: 0,
        RetryCondition.SERVER_ERROR: 3,
    }
    assert parse_budgets({"timeout": {"retries": True}}) == {}


def test_never_more_than_ten_attempts_in_all():
    policy = Policy(budgets=dict.fromkeys(wire.RetryCondition, 50))
    ninth = decide(Attempt(503), request_headers={}, policy=policy, attempts=MAX_ATTEMPTS - 1, failures={})
    tenth = decide(Attempt(503), request_headers={}, policy=policy, attempts=MAX_ATTEMPTS, failures={})
    assert ninth.retry and not tenth.retry
    forced = decide(
        Attempt(500, {"X-Fal-Needs-Retry": "1"}), request_headers={}, policy=DEFAULT, attempts=10, failures={}
    )
    assert not forced.retry


def test_the_default_allows_ten_attempts():
    decisions = [
        decide(
            Attempt(503),
            request_headers={},
            policy=DEFAULT,
            attempts=n,
            failures={RetryCondition.SERVER_ERROR: n - 1},
        )
        for n in range(1, MAX_ATTEMPTS + 1)
    ]
    assert [d.retry for d in decisions] == [True] * (MAX_ATTEMPTS - 1) + [False]


def test_backoff_doubles_up_to_its_cap():
    assert [backoff(n) for n in range(1, 8)] == [0.1, 0.2, 0.4, 0.8, 1.6, BACKOFF_CAP, BACKOFF_CAP]
    delays = [
        decide(Attempt(503), request_headers={}, policy=DEFAULT, attempts=n, failures={}).delay for n in (1, 2, 3)
    ]
    assert delays == [0.1, 0.2, 0.4]


def test_the_start_deadline_is_kept_across_attempts():
    assert first(Attempt(503), now=100.0, deadline=100.5).retry
    late = first(Attempt(503), now=100.0, deadline=100.05)
    assert not late.retry and "X-Fal-Request-Timeout deadline" in late.reason
    assert first(Attempt(503), now=100.0, deadline=None).retry


@pytest.mark.parametrize(
    ("attempt", "stops"),
    [
        (Attempt(503), True),
        (Attempt(503, {"x-fal-stop-runner": "false"}), False),
        (Attempt(503, {"X-Fal-Stop-Runner": "0"}), False),
        (Attempt(500, {"x-fal-stop-runner": "true"}), True),
        (Attempt(200, {"x-fal-stop-runner": "1"}), True),
        (Attempt(500), False),
        (Attempt(504), False),
        (Attempt(504, failure=TIMED_OUT), True),
        (Attempt(503, failure=DISCONNECTED), True),
        (Attempt(200, {"x-fal-stop-runner": "maybe"}), False),
    ],
)
def test_which_attempts_stop_the_runner(attempt, stops):
    assert first(attempt).stop_runner is stops
    assert first(attempt, queued=False).stop_runner is stops  # sync calls too


def test_policy_from_the_apps_config():
    policy = Policy.from_config({"server_error": RetryEntry(retries=3)}, ["timeout"])
    assert policy.budgets == {RetryCondition.SERVER_ERROR: 3} and policy.skip == {RetryCondition.TIMEOUT}
    assert Policy.from_config(None, None) == Policy()
