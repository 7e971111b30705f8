"""Pure placement rules: which shard owns a room. No I/O."""
