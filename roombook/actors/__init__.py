"""Room-shard actors: the shard (a plain class), its runtimes (in-process, Ray) and the client."""
