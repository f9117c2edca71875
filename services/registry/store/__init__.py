"""Storage plumbing every domain shares: outbox, idempotency, locks, bulk inserts, retention."""
