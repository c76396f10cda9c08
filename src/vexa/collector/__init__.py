"""transcription-collector: Redis stream -> live segments in Redis -> transcripts in PostgreSQL."""
