"""store.redis."""
