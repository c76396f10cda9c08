"""collector service."""
