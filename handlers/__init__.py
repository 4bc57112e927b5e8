"""Built-in handlers: one explicit import per handler; each registers itself."""

from handlers import clickhouse, http_request

__all__ = ["clickhouse", "http_request"]
