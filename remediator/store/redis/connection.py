"""Redis clients from a URL: one server, Sentinel or Cluster. Nothing connects here.

URL forms (``[user:password@]`` optional everywhere, percent-encoded):

- ``redis://host:6379/0``, ``rediss://host:6380/0`` (TLS), ``unix:///run/redis.sock?db=0``
- ``redis+sentinel://host1:26379,host2:26379/mymaster/0`` (also ``sentinel://``;
  ``rediss+sentinel://`` for TLS); ``?sentinel_password=...&sentinel_username=...``
  authenticate to the sentinels, the URL's user and password to the master.
- ``redis+cluster://host1:7000,host2:7001`` (``rediss+cluster://`` for TLS), or any
  ``redis://``/``rediss://`` URL with ``?cluster=true``.

Query options for every form: ``socket_timeout``, ``socket_connect_timeout``,
``max_connections``, ``health_check_interval``, ``client_name``, ``protocol``,
``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``,
``ssl_check_hostname``. Connections are made lazily, on the first command, so a
store can be created while Redis is down.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff

from remediator.store.redis.packing import packed_by_hiredis

Client = Redis | RedisCluster

SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0
_FLOATS = ("socket_timeout", "socket_connect_timeout")
_INTS = ("max_connections", "health_check_interval", "protocol")
_BOOLS = ("ssl_check_hostname",)
_STRINGS = ("client_name", "ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_SENTINEL_ONLY = ("sentinel_password", "sentinel_username")


@dataclass
class Connection:
    """A client, how to close it (and what it owns), and its socket timeout."""

    client: Client
    mode: str
    socket_timeout: float
    extra_closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        await self.client.aclose()
        for close in self.extra_closers:
            await close()


@dataclass(frozen=True)
class _Url:
    tls: bool
    hosts: list[tuple[str, int]]
    username: str | None
    password: str | None
    path: list[str]
    options: dict[str, Any]


def connect(url: str, *, pool_size: int) -> Connection:
    """A client for ``url`` with timeouts, a short retry and ``pool_size`` connections."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("redis+sentinel", "rediss+sentinel", "sentinel"):
        return _sentinel(_parse(url, default_port=26379), pool_size)
    if scheme in ("redis+cluster", "rediss+cluster"):
        return _cluster(_parse(url, default_port=6379), pool_size)
    flags = dict(parse_qsl(urlsplit(url).query))
    if scheme in ("redis", "rediss") and _truthy(flags.get("cluster", "")):
        parsed = _parse(url, default_port=6379)
        parsed.options.pop("cluster", None)
        return _cluster(parsed, pool_size)
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"unsupported Redis URL scheme {scheme!r}: expected redis, rediss, "
            "unix, redis+sentinel, sentinel or redis+cluster"
        )
    return _single(_without_cluster_flag(url), pool_size)


def _defaults(pool_size: int) -> dict[str, Any]:
    return {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "max_connections": pool_size,
        "health_check_interval": 10,
        "protocol": 2,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=2),
    }


def _single(url: str, pool_size: int) -> Connection:
    pool = BlockingConnectionPool.from_url(url, timeout=SOCKET_TIMEOUT, **_defaults(pool_size))
    pool.connection_class = packed_by_hiredis(pool.connection_class)  # TLS, Unix socket or TCP
    timeout = pool.connection_kwargs.get("socket_timeout") or SOCKET_TIMEOUT
    return Connection(Redis.from_pool(pool), "single", float(timeout))


def _cluster(url: _Url, pool_size: int) -> Connection:
    options = {**_defaults(pool_size), **_credentials(url), **url.options}
    if url.path:
        raise ValueError("a Redis Cluster URL takes no database path (cluster has db 0 only)")
    nodes = [ClusterNode(host, port) for host, port in url.hosts]
    client = RedisCluster(startup_nodes=nodes, ssl=url.tls, **options)
    # the nodes it discovers get their connection class from these kwargs
    kwargs = client.nodes_manager.connection_kwargs
    kwargs["connection_class"] = packed_by_hiredis(kwargs["connection_class"])
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_class = packed_by_hiredis(node.connection_class)
    return Connection(client, "cluster", float(options["socket_timeout"]))


def _sentinel(url: _Url, pool_size: int) -> Connection:
    if not url.path or not url.path[0]:
        raise ValueError("a Sentinel URL needs the master's name: redis+sentinel://host:26379/NAME")
    options = {**_defaults(pool_size), **_credentials(url), **url.options}
    sentinel_auth = {k.removeprefix("sentinel_"): options.pop(k) for k in _SENTINEL_ONLY if k in options}
    sentinel_kwargs = {
        "socket_timeout": options["socket_timeout"],
        "socket_connect_timeout": options["socket_connect_timeout"],
        "ssl": url.tls,
        "protocol": 2,
        **sentinel_auth,
    }
    db = int(url.path[1]) if len(url.path) > 1 and url.path[1] else 0
    sentinel = Sentinel(url.hosts, sentinel_kwargs=sentinel_kwargs)
    client = sentinel.master_for(url.path[0], db=db, ssl=url.tls, **options)
    pool = client.connection_pool
    pool.connection_class = packed_by_hiredis(pool.connection_class)
    closers: list[Callable[[], Awaitable[None]]] = [s.aclose for s in sentinel.sentinels]
    return Connection(client, "sentinel", float(options["socket_timeout"]), closers)


def _credentials(url: _Url) -> dict[str, Any]:
    creds: dict[str, Any] = {}
    if url.username:
        creds["username"] = url.username
    if url.password:
        creds["password"] = url.password
    return creds


def _parse(url: str, *, default_port: int) -> _Url:
    parts = urlsplit(url)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    hosts = [_host(item, default_port) for item in hostlist.split(",") if item]
    if not hosts:
        raise ValueError("the Redis URL names no host")
    return _Url(
        tls=parts.scheme.lower().startswith("rediss"),
        hosts=hosts,
        username=unquote(user) or None,
        password=unquote(password) or None,
        path=[unquote(p) for p in parts.path.split("/") if p],
        options=_options(parts.query),
    )


def _host(item: str, default_port: int) -> tuple[str, int]:
    if item.startswith("["):  # [::1]:6379
        host, _, rest = item[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = item.partition(":")
    return unquote(host), int(port) if port else default_port


def _options(query: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in _FLOATS:
            options[name] = float(value)
        elif name in _INTS:
            options[name] = int(value)
        elif name in _BOOLS:
            options[name] = _truthy(value)
        elif name in (*_STRINGS, *_SENTINEL_ONLY, "cluster"):
            options[name] = value
        else:
            raise ValueError(f"unknown Redis URL option {name!r}")
    return options


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _without_cluster_flag(url: str) -> str:
    """``url`` without its ``cluster`` option, every other part as written.

    Rebuilt by hand: ``urlunsplit`` drops the ``//`` of a URL with an empty host
    (``unix:///run/redis.sock`` would become ``unix:/run/redis.sock``, which redis-py 8
    refuses).
    """
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if all(k != "cluster" for k, _ in pairs):
        return url
    query = urlencode([(k, v) for k, v in pairs if k != "cluster"])
    rebuilt = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return rebuilt + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")
