"""Releases: the originator of a response decides who beyond the requesting parties receives it."""
