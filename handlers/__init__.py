"""Built-in handlers: one explicit import per handler; each registers itself."""

from handlers import http_request

__all__ = ["http_request"]
