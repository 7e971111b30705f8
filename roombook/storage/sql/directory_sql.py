"""The email directory on SQL: one table in the global store, `email_directory`.

email_key is the HMAC of an email (64 hex digits), region the one holding the account, confirmed
0 while the registration that claimed it has not finished. No email is ever stored here. The table
is created if missing (no numbered migration: it shares the global store with the availability
schema, whose versions it must not take).
"""

from __future__ import annotations

import abc
import datetime as dt

from roombook.domain.accounts import Region
from roombook.domain.directory import PendingClaim


class SqlEmailDirectory(abc.ABC):
    """The directory's statements on one engine: `p` is its placeholder, `insert_ignore` how it
    inserts a row unless its key exists."""

    p: str
    insert_ignore: str

    @abc.abstractmethod
    async def _one(self, sql: str, params: tuple) -> tuple | None: ...

    @abc.abstractmethod
    async def _all(self, sql: str, params: tuple) -> list[tuple]: ...

    @abc.abstractmethod
    async def _write(self, sql: str, params: tuple) -> int: ...

    @abc.abstractmethod
    def _time(self, value: dt.datetime) -> object: ...

    @abc.abstractmethod
    def _from_time(self, value: object) -> dt.datetime: ...

    async def claim(self, key: str, region: Region, now: dt.datetime) -> Region:
        p = self.p
        await self._write(
            f"{self.insert_ignore} INTO email_directory (email_key, region, confirmed, claimed_at)"
            f" VALUES ({p}, {p}, 0, {p})",
            (key, region.value, self._time(now)),
        )
        holder = await self.region_of(key)
        return region if holder is None else holder  # None: released meanwhile; the next step settles it

    async def confirm(self, key: str, region: Region) -> bool:
        p = self.p
        await self._write(
            f"UPDATE email_directory SET confirmed = 1 WHERE email_key = {p} AND region = {p}", (key, region.value)
        )
        row = await self._one(f"SELECT region, confirmed FROM email_directory WHERE email_key = {p}", (key,))
        return row is not None and row[0] == region.value and bool(row[1])

    async def release(self, key: str, region: Region) -> bool:
        p = self.p
        sql = f"DELETE FROM email_directory WHERE email_key = {p} AND region = {p} AND confirmed = 0"
        return await self._write(sql, (key, region.value)) == 1

    async def remove(self, key: str, region: Region) -> bool:
        p = self.p
        return (
            await self._write(
                f"DELETE FROM email_directory WHERE email_key = {p} AND region = {p}", (key, region.value)
            )
            == 1
        )

    async def region_of(self, key: str) -> Region | None:
        row = await self._one(f"SELECT region FROM email_directory WHERE email_key = {self.p}", (key,))
        return None if row is None else Region(row[0])

    async def pending(self, region: Region, claimed_before: dt.datetime) -> list[PendingClaim]:
        p = self.p
        rows = await self._all(
            "SELECT email_key, claimed_at FROM email_directory"
            f" WHERE region = {p} AND confirmed = 0 AND claimed_at < {p} ORDER BY claimed_at LIMIT 1000",
            (region.value, self._time(claimed_before)),
        )
        return [PendingClaim(key=key, region=region, claimed_at=self._from_time(at)) for key, at in rows]
