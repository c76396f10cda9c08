"""bots service."""
