"""The operator's side of caseshare, above the services: the command line and the dev stack.

Nothing in `services/` or `shared/` imports from here; this package imports from both.
"""
