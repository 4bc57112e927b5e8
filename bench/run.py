"""remediator benchmark: intake vs a bare aiohttp baseline, a storm, throughput, overhead, memory.

Run with `make bench`. Everything runs on loopback. The servers under test are
pinned to core 0. The load generators (wrk, this script) and Redis are pinned to
core 1. Results are printed as a table and written to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import hashlib
import asyncio
import json
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-webhook-token"
ADMIN = "bench-admin-token-0123"
SERVER_CORE, LOAD_CORE = "0", "1"


def parse_time(value: str) -> float:
    """An RFC 3339 time of the API (``2026-12-07T20:12:17.250Z``) in epoch seconds."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} never opened")


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if shutil.which("taskset") else argv


class Procs:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str] | None = None,
              log: Path | None = None) -> subprocess.Popen[bytes]:
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


def alert(name: str, target: str, i: int, starts: str = "2026-11-28T10:00:00Z") -> dict[str, Any]:
    labels = {"alertname": name, "severity": "critical", "namespace": "torghut",
              "target": target, "instance": f"chi-torghut-{i % 2}:9363", "table": f"t{i}"}
    return {"status": "firing", "labels": labels,
            "annotations": {"summary": f"{name} on {target}", "runbook_url": "https://runbooks.example.com/x"},
            "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
            "fingerprint": hashlib.sha256(f"{name}/{target}/{i}".encode()).hexdigest()[:16]}


def payload(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"receiver": "remediator", "status": "firing", "alerts": alerts,
            "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]},
            "commonLabels": {"alertname": alerts[0]["labels"]["alertname"]},
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "version": "4",
            "groupKey": '{}:{alertname="X"}', "truncatedAlerts": 0}


RULES = """
defaults:
  cooldown: 1h
  lease: 2m
  max_targets: {{enabled: false}}  # the floods act on 100s of targets on purpose
rules:
  - name: intake
    matchers: ['alertname="BenchIntake"']
    handler: http.request
    target: 'intake/{{{{ labels.target }}}}'
    params: {{url: 'http://127.0.0.1:{port}/run/{{{{ labels.target }}}}'}}
  - name: storm
    matchers: ['alertname="BenchStorm"']
    handler: http.request
    target: 'storm/{{{{ labels.target }}}}'
    params: {{url: 'http://127.0.0.1:{port}/run/{{{{ labels.target }}}}',
              headers: {{X-Fingerprint: '{{{{ alert.fingerprint }}}}'}}}}
  - name: urgent
    matchers: ['alertname="BenchUrgent"']
    handler: http.request
    target: 'urgent/{{{{ labels.target }}}}'
    params: {{url: 'http://127.0.0.1:{port}/run/{{{{ labels.target }}}}'}}
  - name: newalerts
    matchers: ['alertname="BenchNew"']
    handler: http.request
    dry_run: true
    target: 'new/{{{{ labels.target }}}}'
    params: {{url: 'http://127.0.0.1:{port}/run/{{{{ labels.target }}}}'}}
"""

# A replica whose rules also use the Kubernetes and ClickHouse handlers, for the memory
# figure "with them". Both are dry runs; the memory run fires each once before its
# alerts, so the client libraries (imported at a handler's first call, handlers/lazy.py)
# are loaded. No cluster, no ClickHouse: their prechecks fail and the dry run shows
# the plan from the params (nothing listens on 127.0.0.1:1).
HEAVY_RULES = RULES + """
  - name: heavy-bounce
    matchers: ['alertname="BenchHeavyBounce"']
    handler: kubernetes.bounce
    dry_run: true
    target: 'deployment/torghut/torghut-ws'
    params: {{namespace: torghut, deployment: torghut-ws}}
  - name: heavy-clickhouse
    matchers: ['alertname="BenchHeavyReadonly"']
    handler: clickhouse.restore_replica
    dry_run: true
    target: 'clickhouse/{{{{ labels.database }}}}'
    params: {{nodes: ['127.0.0.1:1'], database: '{{{{ labels.database }}}}'}}
"""
HEAVY_ALERTS = ("BenchHeavyBounce", "BenchHeavyReadonly")

# Stands in the new-alerts template for a per-request id (bench/new_alerts.lua): 12 hex digits.
MARKER = "@" * 12


def new_alerts_template() -> str:
    """5 BenchNew alerts whose labels and fingerprints carry MARKER (one id per request)."""
    alerts = []
    for j in range(5):
        a = alert("BenchNew", f"n{MARKER}-{j}", j)
        a["fingerprint"] = f"{MARKER}{j:04x}"
        alerts.append(a)
    return json.dumps(payload(alerts))


class CountingTarget:
    """The repair target: counts handler calls per target and when they came."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.log: list[tuple[float, str, str]] = []
        self.first_at: dict[str, float] = {}
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/run/{target}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def handle(self, request: web.Request) -> web.Response:
        target = request.match_info["target"]
        self.calls[target] += 1
        self.first_at.setdefault(target, time.time())
        self.log.append((time.time(), target, request.headers.get("X-Fingerprint", "")))
        return web.Response(text="ok")

    def reset(self) -> None:
        self.calls.clear()
        self.log.clear()
        self.first_at.clear()

    async def close(self) -> None:
        if self.runner:
            await self.runner.cleanup()


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="remediator-bench-"))
        self.procs = Procs()
        self.results: dict[str, Any] = {}
        self.target = CountingTarget()
        self.redis_port = free_port()
        self.redis: subprocess.Popen[bytes] | None = None
        self.wrk_runs = 0  # a distinct BENCH_RUN per new-alerts wrk run: no alert repeats

    # ---- processes ---------------------------------------------------------
    def start_redis(self) -> None:
        argv = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.tmp)]
        self.redis = self.procs.start(pinned(LOAD_CORE, argv), log=self.tmp / "redis.log")
        wait_port(self.redis_port)

    def flush_redis(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.redis_port), "FLUSHALL"], check=True,
                       capture_output=True)

    def launch_service(self, name: str, workers: int | None,
                       rules: str = RULES) -> tuple[subprocess.Popen[bytes], int]:
        """Start a replica (workers None: the service's default) without waiting for its port."""
        port = free_port()
        rules_file = self.tmp / f"rules-{name}.yaml"
        rules_file.write_text(rules.format(port=self.target.port))
        env = dict(os.environ, PYTHONPATH=str(ROOT), REMEDIATOR_WEBHOOK_TOKEN=TOKEN,
                   REMEDIATOR_ADMIN_TOKEN=ADMIN, REMEDIATOR_RULES=str(rules_file),
                   REMEDIATOR_REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
                   REMEDIATOR_REDIS_PREFIX="bench", REMEDIATOR_LOG_LEVEL="WARNING",
                   REMEDIATOR_PORT=str(port), REMEDIATOR_HOST="127.0.0.1")
        env.pop("REMEDIATOR_WORKERS", None)
        if workers is not None:
            env["REMEDIATOR_WORKERS"] = str(workers)
        proc = self.procs.start(pinned(SERVER_CORE, [sys.executable, "-m", "remediator", "serve"]),
                                env=env, log=self.tmp / f"{name}.log")
        return proc, port

    def start_service(self, name: str, workers: int | None,
                      rules: str = RULES) -> tuple[subprocess.Popen[bytes], int]:
        proc, port = self.launch_service(name, workers, rules)
        try:
            wait_port(port, timeout=120)  # a busy shared machine starts a replica slowly
        except TimeoutError as exc:
            raise RuntimeError(f"replica {name} did not start: see {self.tmp / (name + '.log')}") from exc
        return proc, port

    # ---- metrics of the replicas ---------------------------------------------
    async def metric_text(self, http: aiohttp.ClientSession, port: int) -> str:
        async with http.get(f"http://127.0.0.1:{port}/metrics",
                            timeout=aiohttp.ClientTimeout(total=30)) as resp:  # a busy machine
            return await resp.text()

    async def depth(self, http: aiohttp.ClientSession, port: int) -> int:
        """Jobs stored and not yet finished (remediator_queue_depth, read from Redis); -1 if absent."""
        match = re.search(r"^remediator_queue_depth ([\d.e+]+)", await self.metric_text(http, port), re.M)
        return int(float(match.group(1))) if match else -1

    async def wait_drained(self, http: aiohttp.ClientSession, ports: list[int],
                           timeout: float = 600) -> int:
        deadline = time.monotonic() + timeout
        depth = -1
        while time.monotonic() < deadline:
            depth = await self.depth(http, ports[0])
            if depth == 0:
                return 0
            await asyncio.sleep(0.25)
        return depth

    async def outcomes(self, http: aiohttp.ClientSession, ports: list[int],
                       rule: str | None = None) -> dict[str, int]:
        """Sum of remediator_jobs_total over the replicas (of one rule, if given), by outcome[:reason]."""
        counts: Counter[str] = Counter()
        for port in ports:
            text = await self.metric_text(http, port)
            for m in re.finditer(r'^remediator_jobs_total\{outcome="(\w+)",reason="(\w*)",rule="([\w-]+)"\} ([\d.e+]+)',
                                 text, re.M):
                if rule is not None and m.group(3) != rule:
                    continue
                key = m.group(1) + (f":{m.group(2)}" if m.group(2) else "")
                counts[key] += int(float(m.group(4)))
        return dict(counts)

    async def deduplicated(self, http: aiohttp.ClientSession, ports: list[int]) -> int:
        """Sum of remediator_alerts_deduplicated_total over the replicas."""
        total = 0
        for port in ports:
            text = await self.metric_text(http, port)
            for m in re.finditer(r'^remediator_alerts_deduplicated_total\{[^}]*\} ([\d.e+]+)', text, re.M):
                total += int(float(m.group(1)))
        return total

    async def post_all(self, http: aiohttp.ClientSession, bodies: list[tuple[dict[str, Any], int]],
                       first_sent: dict[str, float] | None = None,
                       on_sent: Any = None) -> tuple[int, int]:
        """POST each (payload, port), 32 at a time, retrying a non-202; returns (accepted, deduplicated).

        first_sent, if given, gets the wall time of the first attempt of the first payload
        that carried each `target` label; on_sent, if given, is called with the number of
        payloads accepted so far after each one."""
        sem = asyncio.Semaphore(32)
        accepted, deduplicated, done = 0, 0, [0]

        async def send(body: dict[str, Any], port: int) -> None:
            nonlocal accepted, deduplicated
            async with sem:
                if first_sent is not None:
                    now = time.time()
                    for a in body["alerts"]:
                        first_sent.setdefault(a["labels"]["target"], now)
                for _ in range(50):
                    async with http.post(f"http://127.0.0.1:{port}/webhooks/alertmanager",
                                         json=body) as resp:
                        if resp.status == 202:
                            answer = await resp.json()
                            accepted += answer["accepted"]
                            deduplicated += answer.get("deduplicated", 0)
                            done[0] += 1
                            if on_sent is not None:
                                on_sent(done[0])
                            return
                    await asyncio.sleep(0.2)
                raise RuntimeError("webhook kept failing")

        await asyncio.gather(*(send(body, port) for body, port in bodies))
        return accepted, deduplicated

    async def post_one(self, http: aiohttp.ClientSession, body: dict[str, Any], port: int) -> int:
        async with http.post(f"http://127.0.0.1:{port}/webhooks/alertmanager", json=body) as resp:
            await resp.read()
            return resp.status

    # ---- intake ----------------------------------------------------------------
    async def wrk(self, server: subprocess.Popen[bytes], port: int, body: Path, new_alerts: bool = False,
                  duration: int | None = None) -> dict[str, Any]:
        """wrk against a webhook: the same body every request, or (new_alerts) the template
        in `body` with a fresh id per request (bench/new_alerts.lua). With the CPU the
        server, Redis and each core used meanwhile."""
        self.wrk_runs += 1
        env = dict(os.environ, BENCH_BODY_FILE=str(body), BENCH_TOKEN=TOKEN,
                   BENCH_MARKER=MARKER, BENCH_RUN=str(self.wrk_runs))
        script = "new_alerts.lua" if new_alerts else "post.lua"
        argv = pinned(LOAD_CORE, ["wrk", "-t1", f"-c{self.args.connections}",
                                  f"-d{duration or self.args.duration}s", "--latency",
                                  "-s", str(ROOT / "bench" / script),
                                  f"http://127.0.0.1:{port}/webhooks/alertmanager"])
        # Not subprocess.run: this event loop also serves the repair target, which the
        # workers call while wrk runs; a blocked loop would turn their calls into timeouts.
        cpu = CpuMeter({"server": server.pid, "redis": self.redis.pid if self.redis else 0})
        proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE)
        raw, _ = await proc.communicate()
        used = cpu.stop()
        if proc.returncode:
            raise RuntimeError(f"wrk failed with exit code {proc.returncode}")
        out = raw.decode()
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        lat = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
               for p in ("50", "99")}
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        return {"rps": rps, "requests": requests, "p50_ms": lat["50"], "p99_ms": lat["99"],
                "non_2xx": int(non2xx.group(1)) if non2xx else 0,
                "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0, **used}

    async def intake(self) -> None:
        same = self.tmp / "intake.json"
        same.write_text(json.dumps(payload([alert("BenchIntake", f"t{i}", i) for i in range(5)])))
        new = self.tmp / "new-alerts.json"
        new.write_text(new_alerts_template())
        base_port = free_port()
        base = self.procs.start(pinned(SERVER_CORE, [sys.executable, str(ROOT / "bench" / "baseline.py"),
                                                     str(base_port)]))
        wait_port(base_port)
        await self.wrk(base, base_port, same)  # warm-up
        baseline = await self.wrk(base, base_port, same)
        baseline_new = await self.wrk(base, base_port, new, new_alerts=True)
        self.procs.stop(base)
        runs = {}
        for label, workers in (("intake_only", 0), ("with_workers", None)):
            self.flush_redis()
            proc, port = self.start_service(f"intake-{label}", workers)
            await self.wrk(proc, port, same)  # warm-up
            runs[label] = await self.wrk(proc, port, same)
            self.procs.stop(proc)
        new_alerts = await self.new_alerts(new)
        new_alerts["baseline"] = baseline_new
        new_alerts["ratio"] = round(new_alerts["rps"] / baseline_new["rps"], 3)
        self.results["intake"] = {
            "baseline": baseline, **runs,
            "ratio_intake_only": round(runs["intake_only"]["rps"] / baseline["rps"], 3),
            "ratio_with_workers": round(runs["with_workers"]["rps"] / baseline["rps"], 3),
            "workers": default_workers(),
            "connections": self.args.connections, "duration_s": self.args.duration,
            "alerts_per_request": 5, "new_alerts": new_alerts,
        }

    async def new_alerts(self, template: Path) -> dict[str, Any]:
        """A full replica; every request 5 new alerts matching the dry-run rule `newalerts`."""
        self.flush_redis()
        proc, port = self.start_service("intake-new-alerts", None)
        async with aiohttp.ClientSession() as http:
            await self.wrk(proc, port, template, new_alerts=True, duration=1)  # warm-up
            warm_depth = await self.wait_drained(http, [port], timeout=30)
            before = sum((await self.outcomes(http, [port])).values())
            depth_before = await self.depth(http, port)
            started = time.monotonic()
            run = await self.wrk(proc, port, template, new_alerts=True)
            wall = time.monotonic() - started
            depth_after = await self.depth(http, port)
            outcomes_after = await self.outcomes(http, [port])
            done = sum(outcomes_after.values()) - before
            await asyncio.sleep(5)  # the flood is over: the queue must shrink now
            depth_later = await self.depth(http, port)
        self.procs.stop(proc)
        queued = 5 * (run["requests"] - run["non_2xx"])
        return {
            **run, "workers": default_workers(), "wall_seconds": round(wall, 2),
            "queue_depth_before": depth_before, "queue_depth_after": depth_after,
            "queue_depth_5s_after": depth_later,
            "warm_up_not_drained": warm_depth,
            "jobs_queued": queued, "jobs_finished": done,
            "jobs_queued_per_s": round(queued / wall), "jobs_finished_per_s": round(done / wall),
            "outcomes_after": outcomes_after,
        }

    # ---- storm -------------------------------------------------------------------
    async def storm(self) -> None:
        self.flush_redis()
        self.target.reset()
        procs = [self.start_service(f"storm-{i}", None) for i in range(2)]
        ports = [p for _, p in procs]
        n_alerts = self.args.storm_alerts
        alerts = [alert("BenchStorm", f"s{i % 100}", i) for i in range(n_alerts)]
        bodies = [payload(alerts[i:i + 5]) for i in range(0, len(alerts), 5)]
        first_sent: dict[str, float] = {}
        lag = LoopLag()
        cpu = CpuMeter({"replica_a": procs[0][0].pid, "replica_b": procs[1][0].pid})
        started = time.monotonic()
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            # An unrelated rule's alert at 20, 40, 60 and 80% of the storm and right after it,
            # each to both replicas: webhook -> its handler's start, behind the storm's backlog.
            posts = [(b, port) for b in bodies for port in ports]
            urgent_sent: dict[str, float] = {}
            urgent_tasks: list[asyncio.Task[None]] = []

            async def urgent(k: int) -> None:
                body = payload([alert("BenchUrgent", f"u{k}", 100_000 + k)])
                urgent_sent[f"u{k}"] = time.time()
                for answer in await asyncio.gather(*(self.post_one(http, body, port) for port in ports)):
                    if answer != 202:
                        raise RuntimeError(f"the urgent alert u{k} was answered {answer}")

            marks = [len(posts) * k // 5 for k in (1, 2, 3, 4)]

            def on_sent(n: int) -> None:
                if marks and n >= marks[0]:
                    marks.pop(0)
                    urgent_tasks.append(asyncio.create_task(urgent(len(urgent_tasks))))

            # Each payload twice (an HA pair), once to each replica.
            accepted, deduplicated = await self.post_all(http, posts, first_sent, on_sent)
            sent_at = time.monotonic()
            urgent_tasks.append(asyncio.create_task(urgent(len(urgent_tasks))))
            await asyncio.gather(*urgent_tasks)
            depth = await self.wait_drained(http, ports)
            drained_at = time.monotonic()
            lag.stop()
            used = cpu.stop()
            outcomes = await self.outcomes(http, ports, rule="storm")
            urgent_outcomes = await self.outcomes(http, ports, rule="urgent")
            collapsed = await self.deduplicated(http, ports)
        for proc, _ in procs:
            self.procs.stop(proc)
        storm_calls = {t: n for t, n in self.target.calls.items() if t.startswith("s")}
        first_start = {t: round(self.target.first_at[t] - sent, 4) if t in self.target.first_at else None
                       for t, sent in sorted(first_sent.items())}
        waits = [w for w in first_start.values() if w is not None]
        missing = sum(1 for w in first_start.values() if w is None)
        urgent_start = {t: round(self.target.first_at[t] - sent, 3) if t in self.target.first_at else None
                        for t, sent in sorted(urgent_sent.items())}
        urgent_waits = [w for w in urgent_start.values() if w is not None]
        self.results["storm"] = {
            "alerts": n_alerts, "deliveries": 2 * n_alerts, "targets": len(first_sent), "replicas": 2,
            "workers": default_workers(),
            "accepted_jobs": accepted, "deduplicated": deduplicated,
            "deduplicated_metric": collapsed, "handler_runs": sum(storm_calls.values()),
            "targets_run_more_than_once": sum(1 for c in storm_calls.values() if c > 1),
            "send_seconds": round(sent_at - started, 2),
            "drain_seconds_after_send": round(drained_at - sent_at, 2),
            "total_seconds": round(drained_at - started, 2), "final_queue_depth": depth,
            "outcomes": outcomes, "jobs_recorded": sum(outcomes.values()),
            # Per target: its first handler call minus the first send of a payload carrying it.
            "first_start_p50_s": _pct(waits, 50, 3), "first_start_p99_s": _pct(waits, 99, 3),
            "first_start_max_s": round(max(waits), 3) if waits else None,
            "targets_never_started": missing, "first_start_s": first_start,
            # The unrelated alerts: webhook -> handler start, each; the worst of them.
            "urgent_start_s": urgent_start, "urgent_never_started": len(urgent_start) - len(urgent_waits),
            "urgent_start_max_s": max(urgent_waits) if urgent_waits else None,
            "urgent_outcomes": urgent_outcomes,
            # The target's clock is this process's event loop, busy sending: how late it ran.
            "bench_loop_lag_max_ms": lag.max_ms, **used,
            "repeated_calls": [c for c in self.target.log if storm_calls.get(c[1], 0) > 1],
        }

    # ---- throughput ------------------------------------------------------------------
    async def throughput(self) -> None:
        """A backlog of distinct dry-run jobs, queued through an intake-only replica, then
        worked off by 2 replicas with the default workers."""
        self.flush_redis()
        n = self.args.backlog
        alerts = [alert("BenchNew", f"q{i}", i) for i in range(n)]
        bodies = [payload(alerts[i:i + 5]) for i in range(0, n, 5)]
        intake, port = self.start_service("throughput-intake", 0)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            accepted, deduplicated = await self.post_all(http, [(b, port) for b in bodies])
            backlog = await self.depth(http, port)
            self.procs.stop(intake)
            if backlog != accepted:
                raise RuntimeError(f"the intake-only replica accepted {accepted} jobs but the queue holds {backlog}")
            launched = time.monotonic()
            procs = [self.launch_service(f"throughput-{i}", None) for i in range(2)]
            ports = [p for _, p in procs]
            cpu = CpuMeter({"replica_a": procs[0][0].pid, "replica_b": procs[1][0].pid,
                            "redis": self.redis.pid if self.redis else 0})
            # (seconds since launch, outcomes recorded, queue depth), polled on both replicas.
            samples: list[tuple[float, int, int]] = []
            cpu_at: list[float] = []  # per sample: both replicas' CPU seconds so far
            deadline = launched + 60 + n / 100
            done, depth = 0, -1
            while time.monotonic() < deadline:
                try:
                    asked = time.monotonic()
                    done = sum((await self.outcomes(http, ports)).values())
                    depth = await self.depth(http, ports[0])
                except (aiohttp.ClientError, TimeoutError):
                    await asyncio.sleep(0.02)  # a replica not listening yet
                    continue
                samples.append(((asked + time.monotonic()) / 2 - launched, done, depth))
                cpu_at.append(sum(cpu_seconds(proc.pid) for proc, _ in procs))
                if depth == 0 and done >= accepted:
                    break
                if any(proc.poll() is not None for proc, _ in procs):
                    raise RuntimeError(f"a replica exited during the throughput run: see {self.tmp}")
                await asyncio.sleep(0.02 if done == 0 else 0.25)  # /metrics costs the replicas CPU
            used = cpu.stop()
            outcomes = await self.outcomes(http, ports)
        for proc, _ in procs:
            self.procs.stop(proc)
        end_at, end_done, end_depth = samples[-1] if samples else (time.monotonic() - launched, 0, -1)
        # From the last sample with no outcome yet (or, if outcomes came before the first
        # sample, from that first sample and its count): the rate from the first outcome.
        zero = [s for s in samples if s[1] == 0]
        t0, c0 = (zero[-1][0], 0) if zero else (samples[0][0], samples[0][1]) if samples else (0.0, 0)
        # CPU per job: both replicas' CPU from that sample to the last, over the jobs recorded
        # meanwhile (their start-up before it left out).
        i0 = len(zero) - 1 if zero else 0
        cpu_per_job = (round(1000 * (cpu_at[-1] - cpu_at[i0]) / (end_done - c0), 3)
                       if samples and end_done > c0 else None)
        finished = end_depth == 0 and end_done >= accepted
        self.results["throughput"] = {
            "backlog": n, "accepted_jobs": accepted, "deduplicated": deduplicated, "queue_depth_before": backlog,
            "replicas": 2, "workers": default_workers(), "finished": finished,
            "seconds_from_launch": round(end_at, 2), "seconds_from_first_outcome": round(end_at - t0, 2),
            "first_outcome_within_s": round(t0, 2), "outcomes_at_first_sample": c0,
            "jobs_per_s": round((end_done - c0) / (end_at - t0)) if end_at > t0 else None,
            "jobs_per_s_from_launch": round(end_done / end_at) if end_at else None,
            "final_queue_depth": end_depth, "outcomes": outcomes, "jobs_recorded": sum(outcomes.values()),
            "replica_cpu_ms_per_job": cpu_per_job,
            **used,  # from the launch of the replicas (start-up included) to the end
        }

    # ---- overhead ------------------------------------------------------------------
    async def overhead(self) -> None:
        self.flush_redis()
        proc, port = self.start_service("overhead", None)
        pickup, record = [], []
        cpu = CpuMeter({"server": proc.pid})
        async with aiohttp.ClientSession() as http:
            for i in range(self.args.samples):
                body = payload([alert("BenchIntake", f"o{i}", i)])
                async with http.post(f"http://127.0.0.1:{port}/webhooks/alertmanager", json=body,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                    event_id = (await resp.json())["event_ids"][0]
                event = await self.event(http, port, event_id)
                # the API's times are RFC 3339 with milliseconds: these latencies are to 1 ms
                steps = {s["name"]: parse_time(s["at"]) for s in event["timeline"]}
                pickup.append((steps["handler.started"] - parse_time(event["received_at"])) * 1000)
                record.append((parse_time(event["finished_at"]) - steps["handler.finished"]) * 1000)
                await asyncio.sleep(0.02)
        used = cpu.stop()
        self.procs.stop(proc)
        self.results["overhead"] = {"samples": len(pickup), "workers": default_workers(), **used,
                                    "pickup_p50_ms": _pct(pickup, 50, 2), "pickup_p99_ms": _pct(pickup, 99, 2),
                                    "record_p50_ms": _pct(record, 50, 2), "record_p99_ms": _pct(record, 99, 2)}

    async def event(self, http: aiohttp.ClientSession, port: int, event_id: str) -> dict[str, Any]:
        for _ in range(500):
            async with http.get(f"http://127.0.0.1:{port}/api/v1/events/{event_id}",
                                headers={"Authorization": f"Bearer {ADMIN}"}) as resp:
                if resp.status == 200:
                    data: dict[str, Any] = await resp.json()
                    return data.get("event", data)
            await asyncio.sleep(0.01)
        raise TimeoutError(f"event {event_id} never recorded")

    # ---- memory ----------------------------------------------------------------------
    async def memory(self, key: str, rules: str) -> None:
        self.flush_redis()
        proc, port = self.start_service(key, None, rules)
        rss_started = rss_kb(proc.pid)
        heavy: dict[str, int] = {}
        total, sent = self.args.memory_alerts, 0
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            if rules is HEAVY_RULES:  # run the Kubernetes and ClickHouse handlers once
                body = payload([alert(name, "heavy", 0) for name in HEAVY_ALERTS])
                for a in body["alerts"]:
                    a["labels"]["database"] = "torghut"
                async with http.post(f"http://127.0.0.1:{port}/webhooks/alertmanager", json=body) as resp:
                    if resp.status != 202 or (await resp.json())["accepted"] != len(HEAVY_ALERTS):
                        raise RuntimeError(f"the heavy rules' alerts were not accepted: HTTP {resp.status}")
                await self.wait_drained(http, [port], timeout=120)
                heavy = await self.outcomes(http, [port])
            samples: list[tuple[int, int]] = [(0, rss_kb(proc.pid))]
            sem = asyncio.Semaphore(32)

            async def send(start: int) -> None:
                body = payload([alert("BenchStorm", f"m{(start + j) % 500}", start + j)
                                for j in range(5)])
                async with sem, http.post(f"http://127.0.0.1:{port}/webhooks/alertmanager",
                                          json=body) as resp:
                    if resp.status != 202:
                        raise RuntimeError(f"HTTP {resp.status}")

            step = total // 10
            while sent < total:
                await asyncio.gather(*(send(i) for i in range(sent, sent + step, 5)))
                sent += step
                samples.append((sent, rss_kb(proc.pid)))
            await self.wait_drained(http, [port])
            samples.append((sent, rss_kb(proc.pid)))
        self.procs.stop(proc)
        half = next(kb for n, kb in samples if n >= total // 2)
        self.results[key] = {
            "alerts": total, "rules": "also kubernetes.bounce and clickhouse.restore_replica, each run once"
            if rules is HEAVY_RULES else "http.request only (no Kubernetes or ClickHouse handler)",
            "rss_mb_started": round(rss_started / 1024, 1),
            "heavy_handler_outcomes": heavy,
            "rss_mb_start": round(samples[0][1] / 1024, 1),
            "rss_mb_after": round(samples[-1][1] / 1024, 1),
            "rss_mb_max": round(max(kb for _, kb in samples) / 1024, 1),
            "growth_mb_second_half": round((samples[-2][1] - half) / 1024, 1),
            "samples": [{"alerts": n, "rss_mb": round(kb / 1024, 1)} for n, kb in samples],
        }

    # ---- driver ------------------------------------------------------------------------
    async def run(self) -> None:
        os.sched_setaffinity(0, {int(LOAD_CORE)}) if hasattr(os, "sched_setaffinity") else None
        self.start_redis()
        await self.target.start()
        try:
            if "intake" in self.args.only:
                await self.intake()
            if "storm" in self.args.only:
                await self.storm()
            if "throughput" in self.args.only:
                await self.throughput()
            if "overhead" in self.args.only:
                await self.overhead()
            if "memory" in self.args.only:
                await self.memory("memory", RULES)
                await self.memory("memory_heavy", HEAVY_RULES)
        finally:
            await self.target.close()
            self.procs.stop_all()
        self.results["machine"] = machine()
        self.results["mode"] = "quick" if self.args.quick else "full"
        self.results["figures"] = figures(self.results)


class LoopLag:
    """The worst delay of this event loop (a 10 ms ticker) while it runs: an upper bound on
    how late the repair target stamps a handler call it receives."""

    def __init__(self) -> None:
        self.max_ms = 0.0
        self.task = asyncio.create_task(self.tick())

    async def tick(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            self.max_ms = max(self.max_ms, round((time.monotonic() - before - 0.01) * 1000, 1))

    def stop(self) -> None:
        self.task.cancel()


def default_workers() -> int:
    """The service's default worker count (the replicas here run with it)."""
    sys.path.insert(0, str(ROOT))
    from remediator.settings import Settings

    return int(Settings.model_fields["workers"].default)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_ticks() -> dict[str, dict[str, int]]:
    """Per core ("0", "1", ...): clock ticks since boot, from /proc/stat: busy, total, and
    of busy: user (+nice), system, irq (hard + soft: the kernel's loopback networking)."""
    ticks = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if re.match(r"cpu\d+ ", line):
            name, *values = line.split()
            user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in values[:8])
            total = user + nice + system + idle + iowait + irq + softirq + steal
            ticks[name.removeprefix("cpu")] = {"busy": total - idle - iowait, "total": total,
                                               "user": user + nice, "system": system, "irq": irq + softirq}
    return ticks


class CpuMeter:
    """CPU used over an interval: by given processes (% of one core) and per core (% busy,
    whoever ran there: on a shared machine other work shows up as the difference)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.started = time.monotonic()
        self.proc = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self.cores = core_ticks()

    def stop(self) -> dict[str, int]:
        wall = time.monotonic() - self.started
        used = {f"{name}_cpu_pct": round(100 * (cpu_seconds(pid) - self.proc[name]) / wall)
                for name, pid in self.pids.items()}
        for core, now in core_ticks().items():
            then = self.cores.get(core, dict.fromkeys(now, 0))
            total = max(1, now["total"] - then["total"])
            for kind in ("busy", "user", "system", "irq"):
                used[f"core{core}_{kind}_pct"] = round(100 * (now[kind] - then[kind]) / total)
        return used


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _pct(values: list[float], pct: int, digits: int) -> float | None:
    """Nearest-rank percentile: the smallest value with at least pct% of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(len(ordered) * pct / 100) - 1)], digits)


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")))
    redis_v = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2].removeprefix("v=")
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
            "python": platform.python_version(), "kernel": platform.release(), "redis": redis_v,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def at_most(value: float | None, limit: float) -> bool:
    return value is not None and value <= limit


def at_least(value: float | None, limit: float) -> bool:
    return value is not None and value >= limit


def others_pct(cpu: dict[str, Any], own: int) -> int:
    """CPU % of the server core neither our processes (own) nor the kernel's interrupts used."""
    return max(0, cpu[f"core{SERVER_CORE}_busy_pct"] - cpu[f"core{SERVER_CORE}_irq_pct"] - own)


def bound(na: dict[str, Any]) -> str:
    """What limited the new-alerts run, from the queue and the CPU used during it."""
    growth = na["queue_depth_after"] - na["queue_depth_before"]
    replica, core = na["server_cpu_pct"], na[f"core{SERVER_CORE}_busy_pct"]
    others = others_pct(na, replica)
    if growth > 0.05 * max(1, na["jobs_queued"]):
        queue = (f"the workers fell behind the intake: {na['jobs_finished_per_s']} jobs/s finished vs "
                 f"{na['jobs_queued_per_s']} queued, queue {na['queue_depth_before']} -> {na['queue_depth_after']}")
    else:
        queue = (f"the workers kept up: {na['jobs_finished_per_s']} jobs/s finished vs {na['jobs_queued_per_s']} "
                 f"queued, queue {na['queue_depth_before']} -> {na['queue_depth_after']}")
    if core < 90:
        cpu = (f"core {SERVER_CORE} was not saturated ({core}%): the limit is elsewhere "
               f"(Redis {na['redis_cpu_pct']}%, load core {na.get(f'core{LOAD_CORE}_busy_pct')}% busy)")
    elif others >= 15:
        cpu = (f"CPU: the replica used {replica}% of core {SERVER_CORE}, other processes about {others}% "
               "(a shared machine: the figure is low)")
    else:
        cpu = f"CPU-bound: the replica used {replica}% of core {SERVER_CORE} ({core}% busy)"
    return f"{queue}; {cpu}"


def figures(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every reported figure: {figure, value, target, ok}; target and ok are None when the
    figure has no target. Rows with a `note` explain the row above."""
    rows: list[dict[str, Any]] = []
    parent = [""]

    def row(name: str, value: Any, target: str | None = None, ok: bool | None = None) -> None:
        # label: as the table shows it (indented under the row above); figure: the full name.
        if name.startswith(" "):
            full = f"{parent[0]}: {name.strip()}"
        else:
            full = parent[0] = name
        rows.append({"figure": full, "label": name, "value": value, "target": target, "ok": ok})

    def note(text: str) -> None:
        rows.append({"note": text})

    if "intake" in results:
        i = results["intake"]
        w = i["workers"]
        row("baseline: bare aiohttp parse, req/s", round(i["baseline"]["rps"]))
        row("intake only (WORKERS=0), req/s", round(i["intake_only"]["rps"]))
        row("  ratio to baseline", i["ratio_intake_only"], ">= 0.6", i["ratio_intake_only"] >= 0.6)
        row("  p50 / p99 latency, ms", f"{i['intake_only']['p50_ms']:.2f} / {i['intake_only']['p99_ms']:.2f}")
        row(f"full replica ({w} workers), same payload, req/s", round(i["with_workers"]["rps"]))
        row("  ratio to baseline", i["ratio_with_workers"], ">= 0.5", i["ratio_with_workers"] >= 0.5)
        row("  p50 / p99 latency, ms", f"{i['with_workers']['p50_ms']:.2f} / {i['with_workers']['p99_ms']:.2f}")
        na = i["new_alerts"]
        row("baseline, new-alerts payloads, req/s", round(na["baseline"]["rps"]))
        row(f"full replica ({w} workers), new alerts, req/s", round(na["rps"]))
        row("  ratio to baseline", na["ratio"], ">= 0.35", na["ratio"] >= 0.35)
        row("  p50 / p99 latency, ms", f"{na['p50_ms']:.2f} / {na['p99_ms']:.2f}")
        row("  queue depth before / after the run", f"{na['queue_depth_before']} / {na['queue_depth_after']}")
        row("  jobs/s queued / finished", f"{na['jobs_queued_per_s']} / {na['jobs_finished_per_s']}")
        row("  jobs/s finished while the intake runs", na["jobs_finished_per_s"], ">= 1000",
            at_least(na["jobs_finished_per_s"], 1000))
        row("  queue depth at the flood's end / 5 s later", f"{na['queue_depth_after']} / {na['queue_depth_5s_after']}",
            "shrinks", na["queue_depth_5s_after"] < na["queue_depth_after"] or na["queue_depth_5s_after"] == 0)
        row(f"  replica CPU / core {SERVER_CORE} busy, %", f"{na['server_cpu_pct']} / {na[f'core{SERVER_CORE}_busy_pct']}")
        note(f"bound: {bound(na)}")
        runs = {"baseline": i["baseline"], "intake only": i["intake_only"], "same payload": i["with_workers"],
                "new-alerts baseline": na["baseline"], "new alerts": na}
        errors = sum(r["non_2xx"] + r["socket_errors"] for r in runs.values())
        row("wrk non-2xx responses + socket errors", errors, "== 0", errors == 0)
        noisy = {name: others_pct(r, r["server_cpu_pct"]) for name, r in runs.items()}
        if any(v >= 15 for v in noisy.values()):
            note(f"other processes on core {SERVER_CORE} during the wrk runs, % of the core: "
                 + ", ".join(f"{name} {v}" for name, v in noisy.items()) + " (a shared machine: ratios are off)")
    if "storm" in results:
        s = results["storm"]
        row(f"storm: handler runs ({s['targets']} targets)", s["handler_runs"], "== 100",
            s["handler_runs"] == 100 == s["targets"])
        row(f"storm: alerts x deliveries, {s['replicas']} replicas", f"{s['alerts']} x 2")
        row("storm: deliveries collapsed at intake", s["deduplicated"])
        row("storm: jobs recorded / queued", f"{s['jobs_recorded']}/{s['accepted_jobs']}", "all",
            s["jobs_recorded"] == s["accepted_jobs"]
            and s["accepted_jobs"] + s["deduplicated"] == s["deliveries"])
        row("storm:   outcomes", ", ".join(f"{k} {v}" for k, v in sorted(s["outcomes"].items())))
        row("storm: send time, s", s["send_seconds"])
        row("storm: queue drained after the last send, s", s["drain_seconds_after_send"], "<= 2",
            s["final_queue_depth"] == 0 and s["drain_seconds_after_send"] <= 2)
        first = (f"{s['first_start_p99_s']}" if not s["targets_never_started"]
                 else f"{s['targets_never_started']} never")
        row("storm: first handler start after first send p99, s", first, "<= 1",
            not s["targets_never_started"] and at_most(s["first_start_p99_s"], 1))
        row("storm:   p50 / max, s", f"{s['first_start_p50_s']} / {s['first_start_max_s']}")
        worst = s["urgent_start_max_s"] if not s["urgent_never_started"] else f"{s['urgent_never_started']} never"
        row("storm: unrelated alert, webhook -> handler start, worst of 5, s", worst, "<= 1",
            not s["urgent_never_started"] and at_most(s["urgent_start_max_s"], 1))
        row("storm:   each (20/40/60/80% and after), s",
            " / ".join(str(v) for v in s["urgent_start_s"].values()))
        row("storm:   bench event loop max lag (timing error), ms", s["bench_loop_lag_max_ms"])
        if (others := others_pct(s, s["replica_a_cpu_pct"] + s["replica_b_cpu_pct"])) >= 15:
            note(f"storm: other processes took about {others}% of core {SERVER_CORE} (a shared machine): "
                 "the times are long")
    if "throughput" in results:
        t = results["throughput"]
        row("throughput: backlog of distinct dry-run jobs", t["backlog"])
        row("throughput: jobs recorded / queued", f"{t['jobs_recorded']}/{t['accepted_jobs']}", "all",
            t["finished"] and t["jobs_recorded"] == t["accepted_jobs"] == t["backlog"])
        row(f"throughput: jobs/s, {t['replicas']} replicas x {t['workers']} workers", t["jobs_per_s"],
            ">= 1000", t["finished"] and at_least(t["jobs_per_s"], 1000))
        row("throughput: replica CPU per job, ms", t["replica_cpu_ms_per_job"], "<= 0.3",
            at_most(t["replica_cpu_ms_per_job"], 0.3))
        row("throughput:   outcomes", ", ".join(f"{k} {v}" for k, v in sorted(t["outcomes"].items())))
        row("throughput:   from the first outcome, s", t["seconds_from_first_outcome"])
        row("throughput:   jobs/s counting start-up", t["jobs_per_s_from_launch"])
        row(f"throughput:   replicas / Redis CPU, core {SERVER_CORE} busy, %",
            f"{t['replica_a_cpu_pct']}+{t['replica_b_cpu_pct']} / {t['redis_cpu_pct']}, {t[f'core{SERVER_CORE}_busy_pct']}")
        if (others := others_pct(t, t["replica_a_cpu_pct"] + t["replica_b_cpu_pct"])) >= 15:
            note(f"throughput: other processes took about {others}% of core {SERVER_CORE} (a shared machine): "
                 "the figure is low")
        if not t["finished"]:
            note(f"throughput: NOT finished: queue depth {t['final_queue_depth']}, "
                 f"{t['jobs_recorded']} of {t['accepted_jobs']} outcomes recorded")
    if "overhead" in results:
        o = results["overhead"]
        row("idle: webhook -> handler start p50, ms", o["pickup_p50_ms"])
        row("idle: webhook -> handler start p99, ms", o["pickup_p99_ms"], "<= 5", at_most(o["pickup_p99_ms"], 5))
        row("idle: handler end -> outcome p50/p99, ms", f"{o['record_p50_ms']} / {o['record_p99_ms']}")
        if (others := others_pct(o, o["server_cpu_pct"])) >= 15:
            note(f"idle: other processes took about {others}% of core {SERVER_CORE} (a shared machine): "
                 "the service was not idle, its latencies are long")
    for key, limit, what in (("memory", 80, "no k8s/CH rules"), ("memory_heavy", 120, "k8s+CH rules")):
        if key in results:
            mem = results[key]
            row(f"RSS after {mem['alerts']} alerts ({what}), MB", mem["rss_mb_after"], f"<= {limit}",
                mem["rss_mb_after"] <= limit)
            if key == "memory_heavy":
                ran = sum(mem["heavy_handler_outcomes"].values())
                row("  k8s + CH handler runs before the alerts (dry run)", ran, "== 2", ran == 2)
                row("  RSS started / after those runs, MB", f"{mem['rss_mb_started']} / {mem['rss_mb_start']}")
            row("  RSS max / growth over the 2nd half, MB", f"{mem['rss_mb_max']} / {mem['growth_mb_second_half']}")
            if key == "memory":
                row("  RSS started, MB", mem["rss_mb_started"])
    return rows


def table(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    lines = [f"machine: {m.get('cpu')} x{m.get('cores')}, {m.get('memory_gb')} GB, "
             f"Python {m.get('python')}, Redis {m.get('redis')}, {m.get('date')}"]
    if results.get("mode") == "quick":
        lines.append("mode: --quick (smaller sizes, shorter runs: not comparable with issue 17's targets, "
                     "which are for a full run)")
    lines.append(f"{'measure':<52} {'value':>14} {'target':>9}  ok")
    for r in results["figures"]:
        if "note" in r:
            lines.append(f"    {r['note']}")
            continue
        mark = "" if r["ok"] is None else ("yes" if r["ok"] else "NO")
        value = "-" if r["value"] is None else r["value"]
        lines.append(f"{r['label']:<52} {value!s:>14} {r['target'] or '':>9}  {mark}")
    return "\n".join(lines)


SECTIONS = ("intake", "storm", "throughput", "overhead", "memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run, of: {','.join(SECTIONS)}")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--memory-alerts", type=int, default=100_000)
    parser.add_argument("--storm-alerts", type=int, default=10_000)
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 3 s wrk runs, 50 samples, a 2,000-alert storm, a 4,000-job "
                             "backlog, 10,000 alerts for memory (figures are not comparable with a full run)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = parser.parse_args()
    args.only = set(args.only.split(","))
    if unknown := args.only - set(SECTIONS):
        parser.error(f"unknown section(s) {','.join(sorted(unknown))}; known: {','.join(SECTIONS)}")
    if args.quick:
        args.duration, args.samples, args.storm_alerts, args.memory_alerts, args.backlog = 3, 50, 2_000, 10_000, 4_000
    bench = Bench(args)
    try:
        asyncio.run(bench.run())
    except BaseException:  # the sections measured before the failure are still shown
        bench.results.setdefault("figures", figures(bench.results))
        bench.results["failed"] = True
        print(table(bench.results))
        raise
    bench.results["sizes"] = {"wrk_seconds": args.duration, "connections": args.connections,
                              "overhead_samples": args.samples, "storm_alerts": args.storm_alerts,
                              "backlog": args.backlog, "memory_alerts": args.memory_alerts}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(bench.results, indent=2))
    print(table(bench.results))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
