"""One routes module per slice."""
