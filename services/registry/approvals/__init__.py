"""Four eyes on the reference changes that decide who can read what: proposal, then approval."""
