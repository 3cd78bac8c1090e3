"""botwarden: a crash-safe runtime for trading bots."""

__version__ = "0.1.0"
