"""Time-ordered ids (booking ids, event ids): ULIDs written in lower-case Crockford base32."""

from __future__ import annotations

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"  # ascending in ASCII, so ids sort as they encode
_PAIRS = [a + b for a in CROCKFORD for b in CROCKFORD]  # 10 bits -> 2 digits, one lookup


def crockford_base32(value: int, length: int) -> str:
    """`value` as exactly `length` base-32 digits, most significant first (value < 32**length)."""
    if value < 0 or value >> (5 * length):
        raise ValueError(f"{value} does not fit in {length} base-32 digits")
    paired_bits = 10 * (length // 2)
    digits = "".join([_PAIRS[(value >> shift) & 0x3FF] for shift in range(paired_bits - 10, -1, -10)])
    return digits if length % 2 == 0 else CROCKFORD[value >> paired_bits] + digits
