"""Durable bot state: the `StateStore` port, its six backends, and the `StateManager`.

Importing this package stays light (no pydantic, no SDKs), so a process that only
needs one backend, such as the crash-test writer, starts fast.
"""

from botwarden.state.base import COLLECTIONS, SCHEMA_VERSION, Change, Delete, Put, StateStore

__all__ = ["COLLECTIONS", "SCHEMA_VERSION", "Change", "Delete", "Put", "StateStore"]
