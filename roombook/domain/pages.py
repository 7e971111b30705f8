"""Pages of a listing (a user's bookings, a room search): counted from 1, each of at most MAX_PER_PAGE items."""

from __future__ import annotations

MAX_PER_PAGE = 100
