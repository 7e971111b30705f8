"""What the MySQL adapters raise for a driver's failure: StoreUnavailable, with whether a write's
outcome is unknown (the connection failed) or known not to have happened (the server answered)."""

from __future__ import annotations

import asyncmy.errors
import pytest

from roombook.domain.errors import StoreUnavailable
from roombook.storage.sql.mysql_db import store_failures


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
