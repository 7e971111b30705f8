"""All of roombook's settings in one struct, read once from the environment at start.

The defaults run the embedded stack: SQLite files under ./data, a local Ray started on demand.
The JWT secret, unless ROOMBOOK_JWT_SECRET gives one, is generated at first start and kept in
<data_dir>/jwt-secret (mode 0600); it is never logged and never shown by repr().
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import msgspec

from roombook.actors.shard import GroupCommit
from roombook.domain.accounts import Region
from roombook.services.accounts import AuthSettings
from roombook.services.payments import PaymentSettings
from roombook.storage.cache.views import CacheSettings

JWT_SECRET_FILE = "jwt-secret"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    data_dir: str = "./data"
    global_dsn: str = ""  # rooms + availability; default sqlite:///<data_dir>/global.db
    eu_dsn: str = ""  # EU users and bookings; default sqlite:///<data_dir>/eu.db
    us_dsn: str = ""  # US users and bookings; default sqlite:///<data_dir>/us.db
    region: str = "all"  # the regions this process serves: "eu", "us" or "all"
    runtime: str = "ray"  # "ray" (shard actors) or "local" (shards in this process)
    ray_address: str | None = None  # None: start a local Ray
    ray_namespace: str = "roombook"
    ray_actor_prefix: str = "roombook-shard"  # shard actors are named <prefix>-<shard id>
    ray_direct: bool = True  # commands over each actor's own socket; False: as Ray actor calls
    gc_freeze: bool = True  # servers and shard actors freeze their start-up heap (roombook/heap.py)
    shards: int = 4
    group_commit: bool = True
    group_commit_max_batch: int = 1024
    group_commit_linger_ms: float = 1.0
    group_commit_linger_alone: bool = False  # also linger for a lone caller (see GroupCommit)
    hold_ttl_s: float = 600.0
    reconcile_every_s: float = 30.0  # how often stale PENDING bookings and recorded cancellations are settled
    # accounts and tokens
    jwt_secret: str = ""  # empty: generated once into <data_dir>/jwt-secret
    jwt_issuer: str = "roombook"
    access_ttl_s: int = 15 * 60
    refresh_ttl_s: int = 30 * 24 * 3600
    login_max_failures: int = 5
    login_window_s: int = 5 * 60
    cookie_secure: bool = True  # False only for plain-http development
    # the simulated payment service
    payment_decline_rate: float = 0.0
    payment_latency_s: float = 0.0
    payment_seed: int | None = None
    # events: the outbox relay, the event bus and its consumers (roombook/events/worker.py)
    events_in_process: bool | None = None  # None: yes on the memory bus; with sns-sqs run `roombook worker`
    event_bus: str = "memory"  # "memory" (inside each process) or "sns-sqs"
    aws_endpoint_url: str | None = None  # None: AWS itself; e.g. a moto server
    aws_region: str = "us-east-1"
    event_prefix: str = "roombook-"  # of every SNS topic and SQS queue name
    event_max_receives: int = 5  # deliveries of a failing message before its dead-letter queue
    # email notifications: .eml files under mail_dir, or SMTP when smtp_host is set
    mail_dir: str = ""  # default <data_dir>/mail
    mail_from: str = "roombook <no-reply@roombook.invalid>"
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_tls: str = "starttls"  # starttls | tls | none
    # the search index and the cache (HLD sections 7 and 11): embedded by default
    search: str = "memory"  # "memory" (built from the catalogue at start) or "opensearch"
    opensearch_url: str = "http://127.0.0.1:9200"
    opensearch_alias: str = "rooms"
    search_candidate_limit: int = 1000  # rooms a search with dates checks for availability
    search_refresh_s: float = 30.0  # embedded index in a process that consumes no events: rebuilt this often
    cache: str = "memory"  # "memory" (in this process) or "redis"
    redis_url: str = "redis://127.0.0.1:6379/0"
    cache_key_prefix: str = "roombook:"
    availability_ttl_s: float = 60.0  # HLD: 30-120 s
    room_details_ttl_s: float = 600.0  # HLD: 5-30 min
    search_ttl_s: float = 120.0  # HLD: 30-300 s

    def __repr__(self) -> str:  # DSNs may hold passwords and the secret must never reach a log
        return (
            f"Settings(data_dir={self.data_dir!r}, region={self.region!r}, runtime={self.runtime!r}, "
            f"shards={self.shards})"
        )

    def __post_init__(self) -> None:
        if self.runtime not in ("ray", "local"):
            raise ValueError(f"ROOMBOOK_RUNTIME must be 'ray' or 'local', not {self.runtime!r}")
        if not 1 <= self.shards <= 1024:
            raise ValueError("ROOMBOOK_SHARDS must be between 1 and 1024")
        if not self.hold_ttl_s > 0 or not self.reconcile_every_s > 0:
            raise ValueError("ROOMBOOK_HOLD_TTL_S and ROOMBOOK_RECONCILE_EVERY_S must be positive")
        if self.region not in ("all", *Region):
            raise ValueError(f"ROOMBOOK_REGION must be 'all' or one of {', '.join(Region)}, not {self.region!r}")
        if self.event_bus not in ("memory", "sns-sqs"):
            raise ValueError(f"ROOMBOOK_EVENT_BUS must be 'memory' or 'sns-sqs', not {self.event_bus!r}")
        if self.search not in ("memory", "opensearch"):
            raise ValueError(f"ROOMBOOK_SEARCH must be 'memory' or 'opensearch', not {self.search!r}")
        if self.cache not in ("memory", "redis"):
            raise ValueError(f"ROOMBOOK_CACHE must be 'memory' or 'redis', not {self.cache!r}")
        if self.smtp_tls not in ("starttls", "tls", "none"):
            raise ValueError(f"ROOMBOOK_SMTP_TLS must be 'starttls', 'tls' or 'none', not {self.smtp_tls!r}")

    @property
    def regions(self) -> tuple[Region, ...]:
        """The regions whose stores this process opens and whose users it serves."""
        return tuple(Region) if self.region == "all" else (Region(self.region),)

    @property
    def runs_events_in_process(self) -> bool:
        """Whether `serve` runs the relay and the consumers itself (see events_in_process)."""
        return self.event_bus == "memory" if self.events_in_process is None else self.events_in_process

    @property
    def mail_directory(self) -> Path:
        return Path(self.mail_dir) if self.mail_dir else Path(self.data_dir) / "mail"

    def dsn(self, name: str) -> str:
        """The DSN of `global`, `eu` or `us`; SQLite paths made absolute (Ray workers have another cwd)."""
        dsn = getattr(self, f"{name}_dsn") or f"sqlite:///{Path(self.data_dir) / f'{name}.db'}"
        if dsn.startswith("sqlite:///") and dsn != "sqlite:///:memory:":
            dsn = "sqlite:///" + str(Path(dsn.removeprefix("sqlite:///")).resolve())
        return dsn

    def auth_settings(self) -> AuthSettings:
        """Account settings; reads (or first creates) the secret file when no secret is configured."""
        return AuthSettings(
            jwt_secret=self.jwt_secret or jwt_secret_in(Path(self.data_dir)),
            jwt_issuer=self.jwt_issuer,
            access_ttl_s=self.access_ttl_s,
            refresh_ttl_s=self.refresh_ttl_s,
            login_max_failures=self.login_max_failures,
            login_window_s=self.login_window_s,
        )

    def payment_settings(self) -> PaymentSettings:
        return PaymentSettings(
            decline_rate=self.payment_decline_rate, latency_s=self.payment_latency_s, seed=self.payment_seed
        )

    def cache_settings(self) -> CacheSettings:
        return CacheSettings(
            availability_ttl_s=self.availability_ttl_s,
            room_details_ttl_s=self.room_details_ttl_s,
            search_ttl_s=self.search_ttl_s,
            redis_url=self.redis_url if self.cache == "redis" else None,
            key_prefix=self.cache_key_prefix,
        )

    def group_commit_policy(self) -> GroupCommit:
        return GroupCommit(
            enabled=self.group_commit,
            max_batch=self.group_commit_max_batch,
            linger_s=self.group_commit_linger_ms / 1000,
            linger_alone=self.group_commit_linger_alone,
        )


_ENV = {
    "data_dir": "ROOMBOOK_DATA_DIR",
    "global_dsn": "ROOMBOOK_GLOBAL_DSN",
    "eu_dsn": "ROOMBOOK_EU_DSN",
    "us_dsn": "ROOMBOOK_US_DSN",
    "region": "ROOMBOOK_REGION",
    "runtime": "ROOMBOOK_RUNTIME",
    "ray_address": "RAY_ADDRESS",
    "ray_namespace": "ROOMBOOK_RAY_NAMESPACE",
    "shards": "ROOMBOOK_SHARDS",
    "group_commit": "ROOMBOOK_GROUP_COMMIT",
    "group_commit_max_batch": "ROOMBOOK_GROUP_COMMIT_MAX_BATCH",
    "group_commit_linger_ms": "ROOMBOOK_GROUP_COMMIT_LINGER_MS",
    "group_commit_linger_alone": "ROOMBOOK_GROUP_COMMIT_LINGER_ALONE",
    "hold_ttl_s": "ROOMBOOK_HOLD_TTL_S",
    "reconcile_every_s": "ROOMBOOK_RECONCILE_EVERY_S",
    "ray_actor_prefix": "ROOMBOOK_RAY_ACTOR_PREFIX",
    "ray_direct": "ROOMBOOK_RAY_DIRECT",
    "gc_freeze": "ROOMBOOK_GC_FREEZE",
    "jwt_secret": "ROOMBOOK_JWT_SECRET",
    "jwt_issuer": "ROOMBOOK_JWT_ISSUER",
    "access_ttl_s": "ROOMBOOK_ACCESS_TTL_S",
    "refresh_ttl_s": "ROOMBOOK_REFRESH_TTL_S",
    "login_max_failures": "ROOMBOOK_LOGIN_MAX_FAILURES",
    "login_window_s": "ROOMBOOK_LOGIN_WINDOW_S",
    "cookie_secure": "ROOMBOOK_COOKIE_SECURE",
    "payment_decline_rate": "ROOMBOOK_PAYMENT_DECLINE_RATE",
    "payment_latency_s": "ROOMBOOK_PAYMENT_LATENCY_S",
    "payment_seed": "ROOMBOOK_PAYMENT_SEED",
    "events_in_process": "ROOMBOOK_EVENTS_IN_PROCESS",
    "event_bus": "ROOMBOOK_EVENT_BUS",
    "aws_endpoint_url": "ROOMBOOK_AWS_ENDPOINT_URL",
    "aws_region": "ROOMBOOK_AWS_REGION",
    "event_prefix": "ROOMBOOK_EVENT_PREFIX",
    "event_max_receives": "ROOMBOOK_EVENT_MAX_RECEIVES",
    "mail_dir": "ROOMBOOK_MAIL_DIR",
    "mail_from": "ROOMBOOK_MAIL_FROM",
    "smtp_host": "ROOMBOOK_SMTP_HOST",
    "smtp_port": "ROOMBOOK_SMTP_PORT",
    "smtp_username": "ROOMBOOK_SMTP_USERNAME",
    "smtp_password": "ROOMBOOK_SMTP_PASSWORD",
    "smtp_tls": "ROOMBOOK_SMTP_TLS",
    "search": "ROOMBOOK_SEARCH",
    "opensearch_url": "ROOMBOOK_OPENSEARCH_URL",
    "opensearch_alias": "ROOMBOOK_OPENSEARCH_ALIAS",
    "search_candidate_limit": "ROOMBOOK_SEARCH_CANDIDATE_LIMIT",
    "search_refresh_s": "ROOMBOOK_SEARCH_REFRESH_S",
    "cache": "ROOMBOOK_CACHE",
    "redis_url": "ROOMBOOK_REDIS_URL",
    "cache_key_prefix": "ROOMBOOK_CACHE_KEY_PREFIX",
    "availability_ttl_s": "ROOMBOOK_AVAILABILITY_TTL_S",
    "room_details_ttl_s": "ROOMBOOK_ROOM_DETAILS_TTL_S",
    "search_ttl_s": "ROOMBOOK_SEARCH_TTL_S",
}


def jwt_secret_in(data_dir: Path) -> str:
    """The secret kept in <data_dir>/jwt-secret, created (mode 0600) if absent.

    Written to a private temporary file and then hard-linked into place, so concurrent first
    starts (several workers) all end up reading the one secret that won, never a partial file.
    """
    path = data_dir / JWT_SECRET_FILE
    with contextlib.suppress(FileNotFoundError):
        return _read_secret(path)
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f".{JWT_SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink()
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    secret = path.read_text().strip()
    if not secret:
        raise SystemExit(f"roombook: {path} is empty: delete it to generate a new secret")
    return secret


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from ROOMBOOK_* variables (and RAY_ADDRESS), then explicit overrides (CLI flags)."""
    environ = os.environ if environ is None else environ
    raw: dict[str, object] = {field: environ[var] for field, var in _ENV.items() if environ.get(var)}
    raw |= {k: v for k, v in overrides.items() if v is not None}
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SystemExit(f"roombook: bad configuration: {exc}") from None
