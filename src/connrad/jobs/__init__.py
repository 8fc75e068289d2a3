"""The durable job queue (outbox) and the worker loop."""
