"""Which regions' fronts answer: polled in the background, marked down at once by a failed request.

A front is up once its /healthz answers 200 and down from the first failure until it answers
again, so a region comes back without restarting the edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from roombook.domain.accounts import Region
from roombook.edge.metrics import REGION_UP

log = logging.getLogger(__name__)


class RegionHealth:
    """Invariant: `is_up(r)` is the outcome of the latest probe or request of region r."""

    def __init__(self, regions: tuple[Region, ...]) -> None:
        self._up = dict.fromkeys(regions, True)  # optimistic until the first poll: fail on evidence only
        for region in regions:
            REGION_UP.labels(region=region.value).set(1)

    def is_up(self, region: Region) -> bool:
        return self._up[region]

    def mark(self, region: Region, up: bool) -> None:
        if self._up[region] != up:
            log.warning("region %s is %s", region, "up again" if up else "down")
        self._up[region] = up
        REGION_UP.labels(region=region.value).set(1 if up else 0)

    @property
    def states(self) -> dict[Region, bool]:
        return dict(self._up)


async def poll_health(
    health: RegionHealth,
    sessions: dict[Region, aiohttp.ClientSession],
    urls: dict[Region, str],
    *,
    every_s: float,
    timeout_s: float,
) -> None:
    """Probe every region's /healthz every `every_s` seconds, forever."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def probe(region: Region) -> None:
        try:
            async with sessions[region].get(urls[region] + "/healthz", timeout=timeout) as resp:
                await resp.read()
                health.mark(region, resp.status == 200)
        except (aiohttp.ClientError, TimeoutError, OSError):
            health.mark(region, False)

    while True:
        with contextlib.suppress(Exception):
            await asyncio.gather(*(probe(region) for region in urls))
        await asyncio.sleep(every_s)
