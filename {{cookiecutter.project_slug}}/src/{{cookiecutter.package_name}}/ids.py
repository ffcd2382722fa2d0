"""Ids that have to be unique, not secret: a request's, a query's of the embedded engine."""

import random


def unique_hex() -> str:
    """128 random bits as 32 hex digits. They are sent back in headers and written to logs, so
    they come from the fast generator, which every process seeds from the operating system
    (again after a fork), not from the operating system on every call."""
    return f"{random.getrandbits(128):032x}"  # nosec B311  # an id, not a secret
