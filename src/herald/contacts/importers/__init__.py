"""contacts/importers."""
