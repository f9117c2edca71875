"""The development stack: embedded PostgreSQL and broker, and the services as supervised children.

`caseshare up` (`make run`) runs it in the foreground; tests and the bench start it as a child
process through `supervised`, on free ports, exactly as a user would.
"""
