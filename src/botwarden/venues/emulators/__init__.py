"""Local servers that speak real venues' wire formats, backed by the paper exchange."""
