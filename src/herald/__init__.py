"""Herald: a self-hosted customer communication hub."""

__version__ = "0.1.0"
