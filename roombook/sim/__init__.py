"""A deterministic simulation of the core: the real RoomShard, AvailabilityClient and shard_wire
code on one seeded, single-threaded event loop whose clock is virtual, over a simulated store and
network that fail on purpose. `python -m roombook.sim --seeds N` runs many seeds; any failure
prints its seed, and `--seed S` replays it exactly. Nothing in the product imports this package.
"""
