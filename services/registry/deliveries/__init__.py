"""Deliveries: one per recipient with standing; the inbox and acknowledgements."""
