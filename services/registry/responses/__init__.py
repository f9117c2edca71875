"""Cooperation responses: what a platform submits, validated and stored."""
