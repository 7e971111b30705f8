"""What checking a request's access token costs, verified each time against kept, side by side.

    python -m bench.token_check --tokens 8 --calls 20000 --rounds 3

Every authenticated request decodes its Bearer token. `AccessTokenCodec.decode` checks a token's
HS256 signature and claims once and keeps its claims by the exact token, checking only its times
on the next uses; a client sends the same token until it expires. This times, in one process and
alternating the order by round, `decode` on `--tokens` tokens used in turn (kept after their first
use) against the full check of the same tokens each time (what every call cost before). Prints µs
per call for both, per round, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from collections.abc import Callable

from roombook.domain.accounts import Region, User
from roombook.services.access_tokens import AccessClaims, AccessTokenCodec


def per_call_us(check: Callable[[str], AccessClaims], tokens: list[str], calls: int) -> float:
    started = time.perf_counter()
    for i in range(calls):
        check(tokens[i % len(tokens)])
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=8, help="distinct tokens, used in turn (bench.api: 8 accounts)")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    codec = AccessTokenCodec(secret="b" * 32, issuer="roombook", ttl_s=900, leeway_s=5, clock=time.time)
    now = dt.datetime.now(dt.UTC)
    tokens = [
        codec.encode(User(id=i + 1, email=f"u{i}@example.org", region=Region.EU, created_at=now))
        for i in range(args.tokens)
    ]

    def verified_each_time(token: str) -> AccessClaims:
        return codec._verify(token)  # the signature and claims check whose result decode keeps

    ways: dict[str, Callable[[str], AccessClaims]] = {"kept": codec.decode, "checked each time": verified_each_time}
    figures: dict[str, list[float]] = {name: [] for name in ways}
    for r in range(args.rounds):
        order = list(ways) if r % 2 == 0 else list(reversed(ways))
        for name in order:
            figures[name].append(per_call_us(ways[name], tokens, args.calls))
        print(f"round {r + 1}: " + ", ".join(f"{name} {figures[name][-1]:.2f} µs" for name in ways))
    kept, each = (statistics.median(figures[name]) for name in ways)
    print(f"median per call: kept {kept:.2f} µs, checked each time {each:.2f} µs, ratio {each / kept:.1f}x")


if __name__ == "__main__":
    main()
