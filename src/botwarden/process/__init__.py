"""Processes: one live instance per bot (the lock), and the supervisor."""
