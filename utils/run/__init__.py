"""The per-item run loop: command-line flags, resume, shards, failures, records."""
