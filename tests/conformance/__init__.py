"""One suite, every store: the pure core, MemoryStore and RedisStore answer alike."""
