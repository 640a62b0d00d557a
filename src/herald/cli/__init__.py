"""Command line: one module per slice, each with register(app)."""
