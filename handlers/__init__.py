"""Built-in handlers: one explicit import per handler; each registers itself."""

from handlers import (
    bounce,
    clickhouse,
    command,
    delete_pod,
    flink,
    gatherers,
    http_request,
    job,
    nodes,
    owners,
    rollout_restart,
    scale,
    set_env,
)

__all__ = [
    "bounce",
    "clickhouse",
    "command",
    "delete_pod",
    "flink",
    "gatherers",
    "http_request",
    "job",
    "nodes",
    "owners",
    "rollout_restart",
    "scale",
    "set_env",
]
