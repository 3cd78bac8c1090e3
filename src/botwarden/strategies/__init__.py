"""Strategies: bars and the current position in, a signal out. No I/O, no clock."""
