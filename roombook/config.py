"""All of roombook's settings in one struct, read once from the environment at start.

Each field is read from ROOMBOOK_<FIELD NAME> (ray_address from RAY_ADDRESS, as Ray itself reads
it). The defaults run the embedded stack: SQLite files under ./data, a local Ray started on
demand. Reading settings has no side effect; `roombook.bootstrap` turns them into the parts of a
deployment. Secrets (DSN passwords, the JWT secret, the SMTP password) never appear in repr().
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from roombook.domain.accounts import Region
from roombook.domain.currency import ConversionTable, conversion_table


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    data_dir: str = "./data"
    global_dsn: str = ""  # rooms + availability; default sqlite:///<data_dir>/global.db
    eu_dsn: str = ""  # EU users and bookings; default sqlite:///<data_dir>/eu.db
    us_dsn: str = ""  # US users and bookings; default sqlite:///<data_dir>/us.db
    directory_dsn: str = ""  # the email directory (keyed hashes -> region); default: the global store
    region: str = "all"  # the regions this process serves: "eu", "us" or "all"
    runtime: str = "ray"  # "ray" (shard actors) or "local" (shards in this process)
    ray_address: str | None = None  # None: start a local Ray
    ray_namespace: str = "roombook"
    ray_actor_prefix: str = "roombook-shard"  # shard actors are named <prefix>-<shard id>
    ray_direct: bool = True  # commands over each actor's own socket; False: as Ray actor calls
    # a Ray runtime_env (JSON) for the shard actors, for nodes without roombook installed:
    # e.g. {"pip": ["roombook==0.1.0"]} or {"py_modules": ["/src/roombook"]}; empty: none
    ray_runtime_env: str = ""
    gc_freeze: bool = True  # servers and shard actors freeze their start-up heap (roombook/heap.py)
    log_format: str = "auto"  # "json" (one object a line), "text", or "auto": text on a terminal, else JSON
    shards: int = 4
    # a shard's owner renews its lease at least every third of this; a lease silent for longer is
    # lapsed, and only then may another deployment take the shard (a live one is never fenced)
    shard_lease_s: float = 6.0
    shard_num_cpus: float = 0.0  # CPUs each shard actor reserves on its node (0: none)
    shard_memory_mb: int = 0  # memory each shard actor reserves on its node (0: none)
    group_commit: bool = True
    group_commit_max_batch: int = 1024
    group_commit_linger_ms: float = 1.0
    group_commit_linger_alone: bool = False  # also linger for a lone caller (see GroupCommit)
    # MySQL regional stores: concurrent bookings' PENDING inserts and transitions share one commit
    regional_group_commit: bool = True
    # MySQL global store: concurrent event deliveries' claims, completions and analytics counts share one commit
    consumer_group_commit: bool = True
    # connections each MySQL store of this process may open (the catalogue, each region)
    mysql_pool_size: int = 16
    hold_ttl_s: float = 600.0
    reconcile_every_s: float = 30.0  # how often stale PENDING bookings and recorded cancellations are settled
    # accounts and tokens
    jwt_secret: str = ""  # empty: generated once into <data_dir>/jwt-secret
    jwt_issuer: str = "roombook"
    directory_secret: str = ""  # keys the email directory's hashes; empty: derived from the JWT secret
    access_ttl_s: int = 15 * 60
    access_tokens_kept: int = 4096  # verified access tokens whose claims a process keeps (0: verify each time)
    refresh_ttl_s: int = 30 * 24 * 3600
    login_max_failures: int = 5
    login_window_s: int = 5 * 60
    cookie_secure: bool = True  # False only for plain-http development
    trusted_proxy_hops: int = 0  # proxies in front whose X-Forwarded-For is believed (behind the edge: 1)
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
    # the search index and the cache: embedded by default
    search: str = "memory"  # "memory" (built from the catalogue at start) or "opensearch"
    opensearch_url: str = "http://127.0.0.1:9200"
    opensearch_alias: str = "rooms"
    search_candidate_page: int = 5000  # rooms a dated search takes from the index at a time (all are checked)
    # room photos: files under <data>/objects served by the app, or an S3 bucket
    object_store: str = "file"  # "file" or "s3"
    objects_dir: str = ""  # default <data_dir>/objects
    s3_bucket: str = ""
    s3_endpoint_url: str | None = None  # None: ROOMBOOK_AWS_ENDPOINT_URL, else AWS itself
    s3_public_url: str | None = None  # a CDN or public bucket URL the keys are appended to; None: pre-signed URLs
    s3_presign_s: int = 86_400  # lifetime of a pre-signed URL (at least twice ROOMBOOK_ROOM_DETAILS_TTL_S)
    image_max_bytes: int = 10 * 2**20  # largest upload accepted
    image_max_pixels: int = 40_000_000
    search_candidate_limit: int = 1000  # rooms a search with a price filter or order and no dates compares
    # prices compared across currencies (search's price filter and order) go through this table:
    # the buyer's currency when a search names none, and what one unit of each other currency is
    # worth in it ("USD=0.92,CAD=0.68"); a currency it does not list is never compared with another
    currency: str = "EUR"
    currency_rates: str = ""
    search_refresh_s: float = 30.0  # embedded index in a process that consumes no events: rebuilt this often
    cache: str = "memory"  # "memory" (in this process) or "redis"
    redis_url: str = "redis://127.0.0.1:6379/0"
    cache_key_prefix: str = "roombook:"
    availability_ttl_s: float = 60.0  # within 30-120 s: a calendar changes with every booking
    room_details_ttl_s: float = 600.0  # within 5-30 min: a room's details rarely change
    search_ttl_s: float = 120.0  # within 30-300 s: long enough for repeated searches to hit
    # a booking reads its room (price, capacity) through the room-details cache, not the catalogue
    booking_room_cache: bool = False
    # how long a booking attempt's claim on a free stay keeps racing attempts off it until its
    # hold is placed (they are refused before writing anything); 0: no claims
    booking_claim_ttl_s: float = 1.0
    # booking attempts checked against their shard at once in a process; the rest wait (0: no bound)
    booking_checks_at_once: int = 0

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
        if self.ray_runtime_env and not isinstance(_json_object(self.ray_runtime_env), dict):
            raise ValueError("ROOMBOOK_RAY_RUNTIME_ENV must be a JSON object (a Ray runtime_env)")
        if not self.shard_lease_s > 0 or self.shard_num_cpus < 0 or self.shard_memory_mb < 0:
            raise ValueError(
                "ROOMBOOK_SHARD_LEASE_S must be positive, ROOMBOOK_SHARD_NUM_CPUS and ROOMBOOK_SHARD_MEMORY_MB"
                " not negative"
            )
        if not 1 <= self.mysql_pool_size <= 1000:
            raise ValueError("ROOMBOOK_MYSQL_POOL_SIZE must be between 1 and 1000")
        if not 0 <= self.access_tokens_kept <= 1_000_000:
            raise ValueError("ROOMBOOK_ACCESS_TOKENS_KEPT must be between 0 (verify every request) and 1000000")
        if not 0 <= self.booking_checks_at_once <= 100_000:
            raise ValueError("ROOMBOOK_BOOKING_CHECKS_AT_ONCE must be between 0 (no bound) and 100000")
        if not 0 <= self.booking_claim_ttl_s <= 60:
            raise ValueError("ROOMBOOK_BOOKING_CLAIM_TTL_S must be between 0 and 60 seconds")
        if not self.hold_ttl_s > 0 or not self.reconcile_every_s > 0:
            raise ValueError("ROOMBOOK_HOLD_TTL_S and ROOMBOOK_RECONCILE_EVERY_S must be positive")
        if self.trusted_proxy_hops < 0:
            raise ValueError("ROOMBOOK_TRUSTED_PROXY_HOPS must be at least 0")
        if self.region not in ("all", *Region):
            raise ValueError(f"ROOMBOOK_REGION must be 'all' or one of {', '.join(Region)}, not {self.region!r}")
        if self.event_bus not in ("memory", "sns-sqs"):
            raise ValueError(f"ROOMBOOK_EVENT_BUS must be 'memory' or 'sns-sqs', not {self.event_bus!r}")
        if self.search not in ("memory", "opensearch"):
            raise ValueError(f"ROOMBOOK_SEARCH must be 'memory' or 'opensearch', not {self.search!r}")
        if self.cache not in ("memory", "redis"):
            raise ValueError(f"ROOMBOOK_CACHE must be 'memory' or 'redis', not {self.cache!r}")
        if self.object_store not in ("file", "s3"):
            raise ValueError(f"ROOMBOOK_OBJECT_STORE must be 'file' or 's3', not {self.object_store!r}")
        if self.object_store == "s3" and not self.s3_bucket:
            raise ValueError("ROOMBOOK_OBJECT_STORE=s3 needs ROOMBOOK_S3_BUCKET")
        if self.object_store == "s3" and self.s3_presign_s < 2 * self.room_details_ttl_s:
            raise ValueError("ROOMBOOK_S3_PRESIGN_S must be at least twice ROOMBOOK_ROOM_DETAILS_TTL_S")
        if not 1 <= self.image_max_bytes <= 100 * 2**20 or self.image_max_pixels < 1:
            raise ValueError("ROOMBOOK_IMAGE_MAX_BYTES must be 1 to 104857600, ROOMBOOK_IMAGE_MAX_PIXELS positive")
        if self.search_candidate_page < 1:
            raise ValueError("ROOMBOOK_SEARCH_CANDIDATE_PAGE must be at least 1")
        if len(self.currency) != 3 or not (self.currency.isalpha() and self.currency.isupper()):
            raise ValueError(f"ROOMBOOK_CURRENCY must be a currency code such as EUR, not {self.currency!r}")
        conversion_table(self.currency, self.currency_rates)  # ValueError for a malformed table
        if self.log_format not in ("auto", "json", "text"):
            raise ValueError(f"ROOMBOOK_LOG_FORMAT must be 'auto', 'json' or 'text', not {self.log_format!r}")
        if self.smtp_tls not in ("starttls", "tls", "none"):
            raise ValueError(f"ROOMBOOK_SMTP_TLS must be 'starttls', 'tls' or 'none', not {self.smtp_tls!r}")

    @property
    def runtime_env(self) -> dict[str, object] | None:
        """ray_runtime_env, decoded (None when unset)."""
        env = _json_object(self.ray_runtime_env) if self.ray_runtime_env else None
        return env if isinstance(env, dict) else None

    @property
    def conversion(self) -> ConversionTable:
        return conversion_table(self.currency, self.currency_rates)

    @property
    def regions(self) -> tuple[Region, ...]:
        """The regions whose stores this process opens and whose users it serves."""
        return tuple(Region) if self.region == "all" else (Region(self.region),)

    @property
    def runs_events_in_process(self) -> bool:
        """Whether `serve` runs the relay and the consumers itself (see events_in_process)."""
        return self.event_bus == "memory" if self.events_in_process is None else self.events_in_process

    @property
    def objects_directory(self) -> Path:
        return Path(self.objects_dir) if self.objects_dir else Path(self.data_dir) / "objects"

    @property
    def mail_directory(self) -> Path:
        return Path(self.mail_dir) if self.mail_dir else Path(self.data_dir) / "mail"

    def dsn(self, name: str) -> str:
        """The DSN of `global`, `eu` or `us`; SQLite paths made absolute (Ray workers have another cwd)."""
        dsn = getattr(self, f"{name}_dsn") or f"sqlite:///{Path(self.data_dir) / f'{name}.db'}"
        if dsn.startswith("sqlite:///") and dsn != "sqlite:///:memory:":
            dsn = "sqlite:///" + str(Path(dsn.removeprefix("sqlite:///")).resolve())
        return dsn


def _json_object(text: str) -> object:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None


# Read from the variable Ray itself reads; every other field from ROOMBOOK_<FIELD>.
_ENV_EXCEPTIONS = {"ray_address": "RAY_ADDRESS"}


def env_name(field: str) -> str:
    """The environment variable a Settings field is read from."""
    return _ENV_EXCEPTIONS.get(field, f"ROOMBOOK_{field.upper()}")


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from ROOMBOOK_* variables (and RAY_ADDRESS), then explicit overrides (CLI flags)."""
    environ = os.environ if environ is None else environ
    raw: dict[str, object] = {
        field: environ[env_name(field)] for field in Settings.__struct_fields__ if environ.get(env_name(field))
    }
    raw |= {k: v for k, v in overrides.items() if v is not None}
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SystemExit(f"roombook: bad configuration: {exc}") from None
