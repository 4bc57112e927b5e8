"""Built-in handlers: one explicit import per handler; each registers itself."""

from handlers import bounce, clickhouse, command, flink, http_request, job, set_env

__all__ = ["bounce", "clickhouse", "command", "flink", "http_request", "job", "set_env"]
