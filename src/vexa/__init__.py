"""Vexa: a self-hostable meeting-bot transcription API."""

__version__ = "0.1.0"
