"""The embedded store (``MemoryStore``), made of one part per interface of ``store.base``."""

from remediator.store.memory.store import MemoryStore

__all__ = ["MemoryStore"]
