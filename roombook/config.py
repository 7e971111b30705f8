"""All of roombook's settings in one struct, read once from the environment at start.

The defaults run the embedded stack: SQLite files under ./data, a local Ray started on demand.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from roombook.actors.shard import GroupCommit


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    data_dir: str = "./data"
    global_dsn: str = ""  # rooms + availability; default sqlite:///<data_dir>/global.db
    eu_dsn: str = ""  # EU users and bookings; default sqlite:///<data_dir>/eu.db
    us_dsn: str = ""  # US users and bookings; default sqlite:///<data_dir>/us.db
    runtime: str = "ray"  # "ray" (shard actors) or "local" (shards in this process)
    ray_address: str | None = None  # None: start a local Ray
    ray_namespace: str = "roombook"
    shards: int = 4
    group_commit: bool = True
    group_commit_max_batch: int = 1024
    group_commit_linger_ms: float = 1.0
    hold_ttl_s: float = 600.0

    def __post_init__(self) -> None:
        if self.runtime not in ("ray", "local"):
            raise ValueError(f"ROOMBOOK_RUNTIME must be 'ray' or 'local', not {self.runtime!r}")
        if not 1 <= self.shards <= 1024:
            raise ValueError("ROOMBOOK_SHARDS must be between 1 and 1024")

    def dsn(self, name: str) -> str:
        """The DSN of `global`, `eu` or `us`; SQLite paths made absolute (Ray workers have another cwd)."""
        dsn = getattr(self, f"{name}_dsn") or f"sqlite:///{Path(self.data_dir) / f'{name}.db'}"
        if dsn.startswith("sqlite:///") and dsn != "sqlite:///:memory:":
            dsn = "sqlite:///" + str(Path(dsn.removeprefix("sqlite:///")).resolve())
        return dsn

    def group_commit_policy(self) -> GroupCommit:
        return GroupCommit(
            enabled=self.group_commit,
            max_batch=self.group_commit_max_batch,
            linger_s=self.group_commit_linger_ms / 1000,
        )


_ENV = {
    "data_dir": "ROOMBOOK_DATA_DIR",
    "global_dsn": "ROOMBOOK_GLOBAL_DSN",
    "eu_dsn": "ROOMBOOK_EU_DSN",
    "us_dsn": "ROOMBOOK_US_DSN",
    "runtime": "ROOMBOOK_RUNTIME",
    "ray_address": "RAY_ADDRESS",
    "ray_namespace": "ROOMBOOK_RAY_NAMESPACE",
    "shards": "ROOMBOOK_SHARDS",
    "group_commit": "ROOMBOOK_GROUP_COMMIT",
    "group_commit_max_batch": "ROOMBOOK_GROUP_COMMIT_MAX_BATCH",
    "group_commit_linger_ms": "ROOMBOOK_GROUP_COMMIT_LINGER_MS",
    "hold_ttl_s": "ROOMBOOK_HOLD_TTL_S",
}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from ROOMBOOK_* variables (and RAY_ADDRESS), then explicit overrides (CLI flags)."""
    environ = os.environ if environ is None else environ
    raw: dict[str, object] = {field: environ[var] for field, var in _ENV.items() if environ.get(var)}
    raw |= {k: v for k, v in overrides.items() if v is not None}
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SystemExit(f"roombook: bad configuration: {exc}") from None
