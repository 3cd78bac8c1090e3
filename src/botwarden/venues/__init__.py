"""Venues: the `Venue` port, its error taxonomy, and the adapters behind it."""
