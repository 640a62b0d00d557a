"""Segments: a typed filter tree over people, saved by name, counted and previewed live."""
