"""HTTP API: thin routes over the slices' service functions."""
