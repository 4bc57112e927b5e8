"""remediator benchmark: intake vs a bare aiohttp baseline, a storm, overhead, memory.

Run with `make bench`. Everything runs on loopback. The servers under test are
pinned to core 0. The load generators (wrk, this script) and Redis are pinned to
core 1. Results are printed as a table and written to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import hashlib
import asyncio
import json
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
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-webhook-token"
ADMIN = "bench-admin-token-0123"
SERVER_CORE, LOAD_CORE = "0", "1"


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
"""


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

    # ---- processes ---------------------------------------------------------
    def start_redis(self) -> None:
        argv = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.tmp)]
        self.procs.start(pinned(LOAD_CORE, argv), log=self.tmp / "redis.log")
        wait_port(self.redis_port)

    def flush_redis(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.redis_port), "FLUSHALL"], check=True,
                       capture_output=True)

    def start_service(self, name: str, workers: int, prefix: str = "bench") -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        rules = self.tmp / "rules.yaml"
        rules.write_text(RULES.format(port=self.target.port))
        env = dict(os.environ, PYTHONPATH=str(ROOT), REMEDIATOR_WEBHOOK_TOKEN=TOKEN,
                   REMEDIATOR_ADMIN_TOKEN=ADMIN, REMEDIATOR_RULES=str(rules),
                   REMEDIATOR_REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
                   REMEDIATOR_REDIS_PREFIX=prefix, REMEDIATOR_WORKERS=str(workers),
                   REMEDIATOR_LOG_LEVEL="WARNING", REMEDIATOR_PORT=str(port),
                   REMEDIATOR_HOST="127.0.0.1")
        proc = self.procs.start(pinned(SERVER_CORE, [sys.executable, "-m", "remediator", "serve"]),
                                env=env, log=self.tmp / f"{name}.log")
        wait_port(port)
        return proc, port

    # ---- intake ----------------------------------------------------------------
    async def wrk(self, port: int, body: Path) -> dict[str, float]:
        env = dict(os.environ, BENCH_BODY_FILE=str(body), BENCH_TOKEN=TOKEN)
        argv = pinned(LOAD_CORE, ["wrk", "-t1", f"-c{self.args.connections}",
                                  f"-d{self.args.duration}s", "--latency",
                                  "-s", str(ROOT / "bench" / "post.lua"),
                                  f"http://127.0.0.1:{port}/webhooks/alertmanager"])
        # Not subprocess.run: this event loop also serves the repair target, which the
        # workers call while wrk runs; a blocked loop would turn their calls into timeouts.
        proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE)
        raw, _ = await proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"wrk failed with exit code {proc.returncode}")
        out = raw.decode()
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        lat = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
               for p in ("50", "99")}
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        return {"rps": rps, "p50_ms": lat["50"], "p99_ms": lat["99"],
                "non_2xx": float(non2xx.group(1)) if non2xx else 0.0}

    async def intake(self) -> None:
        body = self.tmp / "intake.json"
        body.write_text(json.dumps(payload([alert("BenchIntake", f"t{i}", i) for i in range(5)])))
        base_port = free_port()
        base = self.procs.start(pinned(SERVER_CORE, [sys.executable, str(ROOT / "bench" / "baseline.py"),
                                                     str(base_port)]))
        wait_port(base_port)
        await self.wrk(base_port, body)  # warm-up
        baseline = await self.wrk(base_port, body)
        self.procs.stop(base)
        runs = {}
        for label, workers in (("intake_only", 0), ("with_workers", 4)):
            self.flush_redis()
            proc, port = self.start_service(f"intake-{label}", workers)
            await self.wrk(port, body)  # warm-up
            runs[label] = await self.wrk(port, body)
            self.procs.stop(proc)
        self.results["intake"] = {
            "baseline": baseline, **runs,
            "ratio_intake_only": round(runs["intake_only"]["rps"] / baseline["rps"], 3),
            "ratio_with_workers": round(runs["with_workers"]["rps"] / baseline["rps"], 3),
            "connections": self.args.connections, "duration_s": self.args.duration,
            "alerts_per_request": 5,
        }

    # ---- storm -------------------------------------------------------------------
    async def storm(self) -> None:
        self.flush_redis()
        self.target.calls.clear()
        procs = [self.start_service(f"storm-{i}", 4) for i in range(2)]
        n_alerts = self.args.storm_alerts
        alerts = [alert("BenchStorm", f"s{i % 100}", i) for i in range(n_alerts)]
        bodies = [payload(alerts[i:i + 5]) for i in range(0, len(alerts), 5)]
        started = time.monotonic()
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            sem = asyncio.Semaphore(32)
            accepted, deduplicated = 0, 0

            async def send(body: dict[str, Any], port: int) -> None:
                nonlocal accepted, deduplicated
                async with sem:
                    for _ in range(50):
                        async with http.post(f"http://127.0.0.1:{port}/webhooks/alertmanager",
                                             json=body) as resp:
                            if resp.status == 202:
                                answer = await resp.json()
                                accepted += answer["accepted"]
                                deduplicated += answer.get("deduplicated", 0)
                                return
                        await asyncio.sleep(0.2)
                    raise RuntimeError("webhook kept failing")

            # Each payload twice (an HA pair), once to each replica.
            await asyncio.gather(*(send(b, procs[k][1]) for b in bodies for k in (0, 1)))
            sent_at = time.monotonic()
            depth = await self.wait_drained(http, [p for _, p in procs])
            drained_at = time.monotonic()
            outcomes = await self.outcomes(http, [p for _, p in procs])
            collapsed = await self.deduplicated(http, [p for _, p in procs])
        for proc, _ in procs:
            self.procs.stop(proc)
        storm_calls = {t: n for t, n in self.target.calls.items() if t.startswith("s")}
        self.results["storm"] = {
            "alerts": n_alerts, "deliveries": 2 * n_alerts, "targets": 100, "replicas": 2,
            "accepted_jobs": accepted, "deduplicated": deduplicated,
            "deduplicated_metric": collapsed, "handler_runs": sum(storm_calls.values()),
            "targets_run_more_than_once": sum(1 for c in storm_calls.values() if c > 1),
            "send_seconds": round(sent_at - started, 2),
            "drain_seconds_after_send": round(drained_at - sent_at, 2),
            "total_seconds": round(drained_at - started, 2), "final_queue_depth": depth,
            "outcomes": outcomes, "jobs_recorded": sum(outcomes.values()),
            "repeated_calls": [c for c in self.target.log if storm_calls.get(c[1], 0) > 1],
        }

    async def wait_drained(self, http: aiohttp.ClientSession, ports: list[int]) -> int:
        deadline = time.monotonic() + 600
        depth = -1
        while time.monotonic() < deadline:
            async with http.get(f"http://127.0.0.1:{ports[0]}/metrics") as resp:
                text = await resp.text()
            match = re.search(r"^remediator_queue_depth ([\d.e+]+)", text, re.M)
            depth = int(float(match.group(1))) if match else -1
            if depth == 0:
                return 0
            await asyncio.sleep(0.25)
        return depth

    async def outcomes(self, http: aiohttp.ClientSession, ports: list[int]) -> dict[str, int]:
        """Sum of remediator_jobs_total over the replicas, by outcome[:reason]."""
        counts: Counter[str] = Counter()
        for proc_port in ports:
            async with http.get(f"http://127.0.0.1:{proc_port}/metrics") as resp:
                text = await resp.text()
            for m in re.finditer(r'^remediator_jobs_total\{outcome="(\w+)",reason="(\w*)",rule="\w+"\} ([\d.e+]+)',
                                 text, re.M):
                key = m.group(1) + (f":{m.group(2)}" if m.group(2) else "")
                counts[key] += int(float(m.group(3)))
        return dict(counts)

    async def deduplicated(self, http: aiohttp.ClientSession, ports: list[int]) -> int:
        """Sum of remediator_alerts_deduplicated_total over the replicas."""
        total = 0
        for proc_port in ports:
            async with http.get(f"http://127.0.0.1:{proc_port}/metrics") as resp:
                text = await resp.text()
            for m in re.finditer(r'^remediator_alerts_deduplicated_total\{[^}]*\} ([\d.e+]+)', text, re.M):
                total += int(float(m.group(1)))
        return total

    # ---- overhead ------------------------------------------------------------------
    async def overhead(self) -> None:
        self.flush_redis()
        proc, port = self.start_service("overhead", 4)
        pickup, record = [], []
        async with aiohttp.ClientSession() as http:
            for i in range(self.args.samples):
                body = payload([alert("BenchIntake", f"o{i}", i)])
                async with http.post(f"http://127.0.0.1:{port}/webhooks/alertmanager", json=body,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                    event_id = (await resp.json())["event_ids"][0]
                event = await self.event(http, port, event_id)
                steps = {s["name"]: s["at"] for s in event["timeline"]}
                pickup.append((steps["handler.started"] - event["received_at"]) * 1000)
                record.append((event["finished_at"] - steps["handler.finished"]) * 1000)
                await asyncio.sleep(0.02)
        self.procs.stop(proc)
        self.results["overhead"] = {"samples": len(pickup),
                                    "pickup_p50_ms": _pct(pickup, 50), "pickup_p99_ms": _pct(pickup, 99),
                                    "record_p50_ms": _pct(record, 50), "record_p99_ms": _pct(record, 99)}

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
    async def memory(self) -> None:
        self.flush_redis()
        proc, port = self.start_service("memory", 4)
        samples: list[tuple[int, int]] = [(0, rss_kb(proc.pid))]
        total, sent = self.args.memory_alerts, 0
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
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
        self.results["memory"] = {
            "alerts": total, "rss_mb_start": round(samples[0][1] / 1024, 1),
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
            if "overhead" in self.args.only:
                await self.overhead()
            if "memory" in self.args.only:
                await self.memory()
        finally:
            await self.target.close()
            self.procs.stop_all()
        self.results["machine"] = machine()
        self.results["mode"] = "quick" if self.args.quick else "full"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _pct(values: list[float], pct: int) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))], 2)


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")))
    redis_v = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2].removeprefix("v=")
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
            "python": platform.python_version(), "kernel": platform.release(), "redis": redis_v,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def table(results: dict[str, Any]) -> str:
    rows = []
    m = results.get("machine", {})
    rows.append(f"machine: {m.get('cpu')} x{m.get('cores')}, {m.get('memory_gb')} GB, "
                f"Python {m.get('python')}, Redis {m.get('redis')}, {m.get('date')}")
    rows.append(f"{'measure':<44} {'value':>14} {'target':>12}  ok")
    def row(name: str, value: Any, target: str = "", ok: bool | None = None) -> None:
        mark = "" if ok is None else ("yes" if ok else "NO")
        rows.append(f"{name:<44} {value!s:>14} {target:>12}  {mark}")
    if "intake" in results:
        i = results["intake"]
        row("baseline: bare aiohttp parse, req/s", f"{i['baseline']['rps']:.0f}")
        row("intake only (WORKERS=0), req/s", f"{i['intake_only']['rps']:.0f}")
        row("  ratio to baseline", i["ratio_intake_only"], ">= 0.6", i["ratio_intake_only"] >= 0.6)
        row("  p50 / p99 latency, ms", f"{i['intake_only']['p50_ms']:.2f} / {i['intake_only']['p99_ms']:.2f}")
        row("intake + 4 workers on the same core, req/s", f"{i['with_workers']['rps']:.0f}")
        row("  ratio to baseline", i["ratio_with_workers"])
        row("  p50 / p99 latency, ms", f"{i['with_workers']['p50_ms']:.2f} / {i['with_workers']['p99_ms']:.2f}")
    if "storm" in results:
        s = results["storm"]
        row("storm: handler runs (100 targets)", s["handler_runs"], "== 100", s["handler_runs"] == 100)
        row("storm: alerts x deliveries", f"{s['alerts']} x 2")
        row("storm: deliveries collapsed at intake", s["deduplicated"])
        row("storm: jobs recorded / queued", f"{s['jobs_recorded']}/{s['accepted_jobs']}", "all",
            s["jobs_recorded"] == s["accepted_jobs"]
            and s["accepted_jobs"] + s["deduplicated"] == s["deliveries"])
        row("storm: send time, s", s["send_seconds"])
        row("storm: drained after send, s", s["drain_seconds_after_send"])
    if "overhead" in results:
        o = results["overhead"]
        row("webhook -> handler start p50, ms", o["pickup_p50_ms"])
        row("webhook -> handler start p99, ms", o["pickup_p99_ms"], "< 20", o["pickup_p99_ms"] < 20)
        row("handler end -> outcome recorded p50/p99, ms", f"{o['record_p50_ms']} / {o['record_p99_ms']}")
    if "memory" in results:
        mem = results["memory"]
        row(f"RSS after {mem['alerts']} alerts, MB", mem["rss_mb_after"], "< 120", mem["rss_mb_max"] < 120)
        row("RSS growth over the second half, MB", mem["growth_mb_second_half"])
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="intake,storm,overhead,memory")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--memory-alerts", type=int, default=100_000)
    parser.add_argument("--storm-alerts", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 3 s wrk runs, 50 samples, a 2,000-alert storm, 10,000 alerts "
                             "for memory (figures are not comparable with a full run)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = parser.parse_args()
    args.only = set(args.only.split(","))
    if args.quick:
        args.duration, args.samples, args.storm_alerts, args.memory_alerts = 3, 50, 2_000, 10_000
    bench = Bench(args)
    asyncio.run(bench.run())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(bench.results, indent=2))
    print(table(bench.results))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
