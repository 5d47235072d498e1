"""PostgreSQL storage (DATABASE_URL): the durable interaction queue, conversation context,
per-community configuration and usage, shared by every instance. See storage/wiring.py."""
