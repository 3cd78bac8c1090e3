"""The crash-safe engine: write-ahead orders, the stop guarantee, recovery, risk guards."""
