"""What the MySQL adapters raise for a driver's failure: StoreUnavailable, with whether a write's
outcome is unknown (the connection failed) or known not to have happened (the server answered)."""

from __future__ import annotations

import asyncmy.errors
import pytest

from roombook.domain.errors import StoreUnavailable
from roombook.storage.sql.mysql_db import deadlocked, retry_deadlocks, store_failures


@pytest.mark.parametrize(
    ("error", "unknown"),
    [
        (asyncmy.errors.OperationalError(2013, "Lost connection to MySQL server during query"), True),
        (asyncmy.errors.OperationalError(2003, "Can't connect to MySQL server"), True),
        (ConnectionResetError(104, "Connection reset by peer"), True),
        (RuntimeError("Transport does not expose socket instance"), True),  # asyncmy's pool mid-restart
        (asyncmy.errors.OperationalError(1205, "Lock wait timeout exceeded"), False),
        (asyncmy.errors.OperationalError(1213, "Deadlock found"), False),
    ],
)
def test_a_failure_of_the_server_or_connection_is_store_unavailable(error: BaseException, unknown: bool):
    with pytest.raises(StoreUnavailable) as raised, store_failures("the global store"):
        raise error
    assert raised.value.outcome_unknown is unknown
    assert raised.value.__cause__ is error


@pytest.mark.parametrize(
    "error",
    [
        asyncmy.errors.IntegrityError(1062, "Duplicate entry"),
        asyncmy.errors.ProgrammingError(1064, "You have an error in your SQL syntax"),
        RuntimeError("store is not open"),
    ],
)
def test_an_answer_about_the_query_or_a_bug_passes_through(error: BaseException):
    with pytest.raises(type(error)), store_failures("the global store"):
        raise error


def _failing(*errors: BaseException):
    """A transaction that fails with each of `errors` in turn (as store_failures raises them),
    then answers how many times it ran."""
    runs = []

    async def transaction() -> int:
        runs.append(1)
        if len(runs) <= len(errors):
            with store_failures("the global store"):
                raise errors[len(runs) - 1]
        return len(runs)

    return transaction


DEADLOCK = asyncmy.errors.OperationalError(1213, "Deadlock found")


async def test_a_deadlocked_transaction_runs_again_until_it_commits():
    assert await retry_deadlocks(_failing(DEADLOCK, DEADLOCK)) == 3


async def test_a_transaction_that_keeps_deadlocking_fails_as_the_store_after_its_attempts():
    with pytest.raises(StoreUnavailable) as raised:
        await retry_deadlocks(_failing(*[DEADLOCK] * 3), attempts=3)
    assert raised.value.outcome_unknown is False and deadlocked(raised.value)


@pytest.mark.parametrize(
    "error",
    [
        asyncmy.errors.OperationalError(1205, "Lock wait timeout exceeded"),  # another 50 s: no
        asyncmy.errors.OperationalError(2013, "Lost connection to MySQL server during query"),  # may have committed
    ],
)
async def test_any_other_failure_is_not_run_again(error: BaseException):
    transaction = _failing(error)
    with pytest.raises(StoreUnavailable) as raised:
        await retry_deadlocks(transaction)
    assert not deadlocked(raised.value) and await transaction() == 2  # it had run once
