"""bench.handoff: shard moves, rebalance, resizes and a node's loss under a booking storm (see __main__)."""
