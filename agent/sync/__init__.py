"""Sync of masters upstream: an outbox in the library database, uploaders, retention of raw frames."""
