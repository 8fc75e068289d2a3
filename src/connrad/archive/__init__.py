"""The hierarchy index, the ingest pipeline, and query and retrieve services."""
