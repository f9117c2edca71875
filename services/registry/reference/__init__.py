"""Reference data: jurisdictions and platforms, their seed and administration."""
