"""The embedded OAuth 2.0 authorization server used by development and tests."""
