"""Legal requests through the hub: orders to platforms, their states and their clocks."""
