"""Built-in handlers: one explicit import per handler; each registers itself."""

from handlers import bounce, flink, http_request

__all__ = ["bounce", "flink", "http_request"]
