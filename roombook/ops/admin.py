"""Administrators: created, or promoted from an existing user."""

from __future__ import annotations

import contextlib
import datetime as dt

from roombook import bootstrap
from roombook.config import Settings
from roombook.domain.accounts import Region, Role, normalize_email
from roombook.services.accounts import AccountService
from roombook.storage.ports import RegionalStore


async def create_admin(settings: Settings, *, email: str, password: str, region: Region) -> None:
    """Make a new admin in `region`, or promote the existing user with that email (in any region
    `settings` serves)."""
    email = normalize_email(email)
    async with contextlib.AsyncExitStack() as stack:
        stores: dict[Region, RegionalStore] = {}
        for r in settings.regions:
            stores[r] = await stack.enter_async_context(bootstrap.regional_store(settings, r))
            await stores[r].migrate()
        for store in stores.values():
            account = await store.account_by_email(email)
            if account is not None:
                await store.set_role(account.user.id, Role.ADMIN, dt.datetime.now(dt.UTC))
                print(f"promoted {email} (user {account.user.id}, {store.region}) to admin")
                return
        directory = bootstrap.email_directory(settings)
        await stack.enter_async_context(directory.store)
        await directory.store.migrate()
        user = await AccountService(stores, bootstrap.auth_settings(settings), directory=directory).register(
            email=email, password=password, region=region
        )
        await stores[region].set_role(user.id, Role.ADMIN, dt.datetime.now(dt.UTC))
        print(f"created admin {email} (user {user.id}, {region})")
