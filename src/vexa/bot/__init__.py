"""bot service."""
