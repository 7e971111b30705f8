"""`roombook directory backfill`: give every account the email directory entry it lacks.

Accounts registered before the directory existed have no entry, so their logins are routed by
hints only. Backfilling claims and confirms each email of each served region's users. An email
another region holds already is reported, never moved: two regions holding one email predate the
directory's uniqueness and are for an operator to settle.
"""

from __future__ import annotations

import contextlib
import datetime as dt

from roombook import bootstrap
from roombook.config import Settings


async def backfill_directory(settings: Settings) -> tuple[int, int]:
    """(entries confirmed, emails held by another region), over the regions `settings` serves."""
    directory = bootstrap.email_directory(settings)
    confirmed = conflicts = 0
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(directory.store)
        await directory.store.migrate()
        for region in settings.regions:
            store = await stack.enter_async_context(bootstrap.regional_store(settings, region))
            await store.migrate()
            now = dt.datetime.now(dt.UTC)
            for email in await store.emails_registered_since(dt.datetime(1970, 1, 1, tzinfo=dt.UTC)):
                holder = await directory.claim(email, region, now)
                if holder != region:
                    conflicts += 1
                    print(f"{region}: an account's email is held by region {holder} already: left as it is")
                elif await directory.confirm(email, region):
                    confirmed += 1
    print(f"email directory: {confirmed} entries confirmed, {conflicts} held by another region")
    return confirmed, conflicts
