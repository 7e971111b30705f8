"""What e2e tests share besides fixtures: the Settings of an e2e app and new users' details."""

from __future__ import annotations

import itertools
import secrets
from pathlib import Path

from roombook.config import Settings
from roombook.services.accounts import AuthSettings

PASSWORD = "correct horse battery staple"
JWT_SECRET = "e2e-test-secret-" + "k" * 32
CHEAP_ARGON2 = dict(argon2_time_cost=1, argon2_memory_kib=256, argon2_parallelism=1)
_emails = itertools.count(1)


def settings_for(data_dir: Path, **overrides: object) -> Settings:
    fields: dict[str, object] = dict(data_dir=str(data_dir), runtime="local", shards=2, jwt_secret=JWT_SECRET)
    return Settings(**(fields | overrides))


def auth_settings(**overrides: object) -> AuthSettings:
    return AuthSettings(jwt_secret=JWT_SECRET, **(CHEAP_ARGON2 | overrides))


def new_email() -> str:
    return f"user{next(_emails)}-{secrets.token_hex(3)}@example.com"
