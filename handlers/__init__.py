"""Built-in handlers: one explicit import per handler; each registers itself."""

from handlers import bounce, clickhouse, flink, http_request, set_env

__all__ = ["bounce", "clickhouse", "flink", "http_request", "set_env"]
