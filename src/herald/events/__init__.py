"""The event log's dispatcher: slices subscribe handlers per event kind; the worker feeds them committed events."""
