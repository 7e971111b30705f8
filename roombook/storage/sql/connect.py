"""Choose a store's adapter from a DSN. Nothing connects until the store is entered."""

from __future__ import annotations

import logging

from roombook.domain.accounts import Region
from roombook.storage.ports import AvailabilityStore, EmailDirectory, RegionalStore
from roombook.storage.sql.mysql_availability import MysqlAvailabilityStore
from roombook.storage.sql.mysql_db import mysql_target
from roombook.storage.sql.mysql_regional import MysqlRegionalStore
from roombook.storage.sql.sqlite_availability import SqliteAvailabilityStore
from roombook.storage.sql.sqlite_db import sqlite_path
from roombook.storage.sql.sqlite_regional import SqliteRegionalStore

log = logging.getLogger(__name__)


def availability_store(dsn: str, *, pool_size: int = 4, group_commit: bool = True) -> AvailabilityStore:
    """`sqlite:///path` or `mysql://user:password@host:port/database` -> an unopened store;
    pool_size: the connections a MySQL store may open; group_commit (MySQL): the consumers'
    concurrent writes share transactions (mysql_event_batches).

    The DSN may hold a password: it is never logged nor put in an error message.
    """
    scheme = dsn.partition(":")[0].lower()
    if scheme == "sqlite":
        path = sqlite_path(dsn)
        log.info("availability store: sqlite %s", path)
        return SqliteAvailabilityStore(path)
    if scheme in ("mysql", "mariadb"):
        target = mysql_target(dsn)
        log.info("availability store: %r", target)  # MysqlTarget's repr leaves the password out
        return MysqlAvailabilityStore(target, pool_size=pool_size, batch_event_writes=group_commit)
    raise ValueError(f"unknown availability store scheme {scheme!r}: use sqlite:///path or mysql://...")


def regional_store(dsn: str, region: Region, *, group_commit: bool = True, pool_size: int = 10) -> RegionalStore:
    """An unopened store of one region's users and bookings, on the same DSN forms as above.
    group_commit (MySQL): concurrent bookings' writes share transactions (mysql_booking_batches)."""
    scheme = dsn.partition(":")[0].lower()
    if scheme == "sqlite":
        path = sqlite_path(dsn)
        log.info("%s regional store: sqlite %s", region, path)
        return SqliteRegionalStore(path, region)
    if scheme in ("mysql", "mariadb"):
        target = mysql_target(dsn)
        log.info("%s regional store: %r", region, target)
        return MysqlRegionalStore(target, region, group_commit=group_commit, pool_size=pool_size)
    raise ValueError(f"unknown regional store scheme {scheme!r}: use sqlite:///path or mysql://...")


def email_directory(dsn: str) -> EmailDirectory:
    """The email directory, in the global store's database (the same DSN as availability_store)."""
    scheme = dsn.partition(":")[0].lower()
    if scheme == "sqlite":
        from roombook.storage.sql.sqlite_directory import SqliteEmailDirectory

        return SqliteEmailDirectory(sqlite_path(dsn))
    if scheme in ("mysql", "mariadb"):
        from roombook.storage.sql.mysql_directory import MysqlEmailDirectory

        return MysqlEmailDirectory(mysql_target(dsn))
    raise ValueError(f"unknown directory store scheme {scheme!r}: use sqlite:///path or mysql://...")
