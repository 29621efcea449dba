"""memory-store: a privacy-first memory service for AI assistants."""

__version__ = "0.1.0"
