"""Cases: registration with cross-matching, reads, status changes."""
