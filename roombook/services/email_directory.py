"""Which region holds the account of an email, without the email leaving its region.

The global store keeps keyed hashes of emails -> region (roombook.domain.directory). A
registration runs three steps: (1) claim the key for its region (pending), (2) create the user
in the region's store, (3) confirm the claim. What a crash leaves, and who settles it:

* after (1): a pending claim and no user. A login is routed to that region, which has no such
  account: 401, as anywhere. The region's settler (`settle`, every reconciler period) deletes its
  pending claims older than CLAIM_GRACE_S whose email no user of the region has.
* after (2): a pending claim and the user. Logins already go to the right region; the settler
  confirms it. A retry of the registration confirms it too (and answers 409 duplicate-email:
  the account exists).
* a registration slower than the grace whose claim the settler deleted finds its confirm
  refused: it deletes its user again and answers 503, and its retry starts over.

A claim of another region's key is refused (409), confirmed or pending: only the region that
claimed a key ever settles it, so two regions never both hold an account for one email, which
the regional stores alone cannot enforce. Deleting an account removes its entry after the user's
rows (a crash in between leaves an entry pointing at a region with no account: logins there get
401, and a new registration of the email in that region takes the entry over).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from roombook.domain.accounts import Region
from roombook.domain.directory import email_key
from roombook.domain.errors import InvalidEmail
from roombook.storage.ports import EmailDirectory, RegionalStore

log = logging.getLogger(__name__)

CLAIM_GRACE_S = 30.0  # a registration's claim is settled only once it is older than this
CLOCK_SKEW_S = 60.0  # users created this long before a claim still count for it


class AccountDirectory:
    """The email directory in terms of emails: keys them with the secret, never stores them."""

    def __init__(self, store: EmailDirectory, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the directory secret needs at least 32 bytes")
        self.store = store
        self._secret = secret

    def __repr__(self) -> str:  # the secret must never reach a log
        return "AccountDirectory(...)"

    def key(self, email: str) -> str:
        return email_key(self._secret, email)

    async def claim(self, email: str, region: Region, now: dt.datetime) -> Region:
        return await self.store.claim(self.key(email), region, now)

    async def confirm(self, email: str, region: Region) -> bool:
        return await self.store.confirm(self.key(email), region)

    async def release(self, email: str, region: Region) -> bool:
        return await self.store.release(self.key(email), region)

    async def region_of(self, email: str) -> Region | None:
        """The region holding the account of `email`, None if unknown (or not an email at all)."""
        try:
            key = self.key(email)
        except InvalidEmail:
            return None
        return await self.store.region_of(key)

    async def settle(self, stores: Mapping[Region, RegionalStore], now: dt.datetime) -> tuple[int, int]:
        """Confirm or delete each region's pending claims older than the grace, by whether its
        store has a user of that email: (confirmed, released)."""
        confirmed = released = 0
        for region, store in stores.items():
            claims = await self.store.pending(region, now - dt.timedelta(seconds=CLAIM_GRACE_S))
            if not claims:
                continue
            since = min(c.claimed_at for c in claims) - dt.timedelta(seconds=CLOCK_SKEW_S)
            present = {self.key(email) for email in await store.emails_registered_since(since)}
            for claim in claims:
                if claim.key in present:
                    confirmed += await self.store.confirm(claim.key, region)
                else:
                    released += await self.store.release(claim.key, region)
        if confirmed or released:
            log.warning("email directory settled: %d claims confirmed, %d released", confirmed, released)
        return confirmed, released
