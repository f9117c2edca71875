"""The registry process's HTTP layer: coordinator and admin routes, live stream, dashboard."""
