"""The server-rendered web UI: pages, templates and static files."""
