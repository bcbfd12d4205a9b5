"""The image inventory's digests: resolved from registries (``resolve``), kept in the lock."""
