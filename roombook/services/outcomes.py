"""Telling a refused change from one whose outcome is not known, for every saga."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

from roombook.domain.errors import OutcomeUnknown, RoombookError, ShardUnavailable, StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# Failures after which whether a change happened is unknown: a retry, not a guess, settles it.
UNKNOWN_AFTER = (StoreUnavailable, ShardUnavailable, OutcomeUnknown)


async def unknown_on_failure(step: Awaitable[T]) -> T:
    """The step's result; a failure after which its change may or may not have happened is
    raised as OutcomeUnknown."""
    try:
        return await step
    except UNKNOWN_AFTER as exc:
        raise OutcomeUnknown(f"the outcome is not known yet ({exc}); retry the same request to settle it") from exc
    except RoombookError:
        raise
    except Exception as exc:  # a bug or a failure nobody named: still not a failure of the request
        log.exception("booking step failed; its outcome is unknown")
        raise OutcomeUnknown("the outcome is not known yet; retry the same request to settle it") from exc
