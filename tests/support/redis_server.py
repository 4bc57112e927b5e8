"""Real redis-server processes for tests: one server, or a local 3-master cluster.

Usage (in a test module)::

    @pytest.fixture(scope="module")
    def redis_server(tmp_path_factory):
        with RedisServer.running(tmp_path_factory.mktemp("redis")) as server:
            yield server

Each server listens on 127.0.0.1 on a free port, with its files in its own
directory; ``kill()`` / ``stop()`` / ``start()`` / ``restart()`` drive fault tests
(``persistent=True`` turns on an fsync-always AOF, so a killed server keeps
every acknowledged write). ``flush()`` empties it between tests.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.support.procs import free_port, require_binary, server_allowed, wait_port


class RedisServer:
    """One redis-server process; its data directory outlives restarts."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        persistent: bool = False,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.binary = require_binary("redis-server", "/usr/bin/redis-server")
        self.directory = directory
        self.port = port or free_port()
        self.persistent = persistent
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    @contextlib.contextmanager
    def running(cls, directory: Path, **kwargs: object) -> Iterator[RedisServer]:
        server = cls(directory, **kwargs)  # type: ignore[arg-type]
        server.start()
        try:
            yield server
        finally:
            server.stop()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def args(self) -> list[str]:
        durability = (
            ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        )
        return [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
            *durability,
            *self.extra,
        ]

    def start(self, timeout: float = 20.0) -> None:
        server_allowed("redis-server")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(self.port, timeout)
        except TimeoutError:
            log = self.directory / "redis.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            self.kill()
            raise RuntimeError(f"redis-server on port {self.port} did not start:\n{tail}") from None
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until the server answers PING (it refuses while loading its AOF)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.client() as client:
                    client.ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def flush(self) -> None:
        with self.client() as client:
            client.flushall()

    def kill(self) -> None:
        """SIGKILL: no shutdown save, clients see their connections reset."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class RedisClusterNodes:
    """Three masters (no replicas) made into one cluster with ``redis-cli --cluster create``."""

    def __init__(self, directory: Path, size: int = 3) -> None:
        self.cli = require_binary("redis-cli", "/usr/bin/redis-cli")
        self.nodes = [
            RedisServer(
                directory / f"node{i}",
                port=_cluster_port(),
                extra=(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                ),
            )
            for i in range(size)
        ]

    @classmethod
    @contextlib.contextmanager
    def running(cls, directory: Path) -> Iterator[RedisClusterNodes]:
        cluster = cls(directory)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"redis+cluster://{hosts}"

    def start(self, timeout: float = 60.0) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [self.cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        self.wait_ok(timeout)

    def wait_ok(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(self._state_ok(node) for node in self.nodes):
            if time.monotonic() > deadline:
                raise TimeoutError("the local Redis cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    @staticmethod
    def _state_ok(node: RedisServer) -> bool:
        with node.client() as client:
            info = client.execute_command("CLUSTER", "INFO")
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text

    def flush(self) -> None:
        for node in self.nodes:
            node.flush()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class RedisSentinel(RedisServer):
    """A sentinel (``redis-server --sentinel``) watching ``master`` as ``name``."""

    def __init__(self, directory: Path, master: RedisServer, name: str = "mymaster") -> None:
        super().__init__(directory)
        self.master = master
        self.name = name

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.name}/0"

    def args(self) -> list[str]:
        conf = self.directory / "sentinel.conf"  # sentinel rewrites it: one per directory
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"logfile {self.directory / 'redis.log'}\n"
            f"sentinel monitor {self.name} 127.0.0.1 {self.master.port} 1\n",
            encoding="utf-8",
        )
        return [self.binary, str(conf), "--sentinel"]

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self.client() as client:
                address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
            if address:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"sentinel does not know master {self.name!r}")
            time.sleep(0.05)
