"""The hash-chained audit log: queued by writers, chained by one sequencer."""
