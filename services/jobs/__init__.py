"""One-shot deploy jobs that run before the services: schema migration and reference data."""
