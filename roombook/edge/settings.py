"""The edge's settings: ROOMBOOK_EDGE_<FIELD>, read once at start (CLI flags override).

The secrets it verifies tokens and keys emails with are the deployment's own (ROOMBOOK_JWT_SECRET,
ROOMBOOK_DIRECTORY_SECRET, from roombook.config.Settings), and so is the global store it reads the
email directory from (ROOMBOOK_GLOBAL_DSN).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

from roombook.domain.accounts import Region
from roombook.edge.rules import EdgeRules, parse_country_regions


class EdgeSettings(msgspec.Struct, frozen=True, kw_only=True):
    eu_url: str = ""  # the EU front, e.g. http://10.0.1.5:8080
    us_url: str = ""
    default_region: Region = Region.EU  # for a request that names no region and no country
    country_header: str = "CloudFront-Viewer-Country"  # set by the CDN or load balancer in front
    country_regions: str = "US=us,CA=us,MX=us,BR=us,AR=us,CL=us,CO=us,PE=us"  # unlisted: default_region
    max_body_bytes: int = 64 * 1024  # larger bodies are refused (413) before they reach a front
    rate_per_s: float = 50.0  # per client address, after a burst of rate_burst
    rate_burst: int = 100
    trusted_hops: int = 0  # proxies in front whose X-Forwarded-For is believed (a CDN: 1)
    upstream_timeout_s: float = 30.0
    connections_per_region: int = 256  # the keep-alive pool to each front
    health_every_s: float = 1.0  # how often each front's /healthz is polled
    health_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("eu_url", "us_url"):
            url = getattr(self, name)
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"ROOMBOOK_EDGE_{name.upper()} must be an http(s) URL of that region's front")
        if self.max_body_bytes < 1 or self.rate_burst < 1 or not self.rate_per_s > 0 or self.trusted_hops < 0:
            raise ValueError("the edge's body cap, rate and burst must be positive, trusted hops at least 0")
        if not self.health_every_s > 0 or not self.health_timeout_s > 0 or not self.upstream_timeout_s > 0:
            raise ValueError("the edge's timeouts and health period must be positive")
        parse_country_regions(self.country_regions)  # a bad mapping fails at start, not per request

    def url(self, region: Region) -> str:
        return (self.eu_url if region is Region.EU else self.us_url).rstrip("/")

    @property
    def rules(self) -> EdgeRules:
        mapping = parse_country_regions(self.country_regions)
        return EdgeRules(default_region=self.default_region, country_regions=mapping)


def edge_env_name(field: str) -> str:
    return f"ROOMBOOK_EDGE_{field.upper()}"


def load_edge_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> EdgeSettings:
    """EdgeSettings from ROOMBOOK_EDGE_* variables, then explicit overrides (CLI flags)."""
    environ = os.environ if environ is None else environ
    raw: dict[str, object] = {
        f: environ[edge_env_name(f)] for f in EdgeSettings.__struct_fields__ if environ.get(edge_env_name(f))
    }
    raw |= {k: v for k, v in overrides.items() if v is not None}
    try:
        return msgspec.convert(raw, EdgeSettings, strict=False)
    except msgspec.ValidationError as exc:
        raise SystemExit(f"roombook edge: bad configuration: {exc}") from None
