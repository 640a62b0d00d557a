"""Shared kernel: clock, errors, settings."""
