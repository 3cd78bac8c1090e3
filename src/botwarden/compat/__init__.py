"""Bridges for bots coming from other frameworks: their records as botwarden's.

Pure conversions over `domain`: no storage, no venue, no clock. What botwarden stores
is always its own form; these only read the other framework's.
"""
