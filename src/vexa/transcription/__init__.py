"""transcription service."""
