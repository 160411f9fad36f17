"""`make bench`: instructions per request (callgrind), throughput and latency of the API
variants side by side (interleaved rounds), cardinality and memory under hostile traffic, and
/metrics rendering against prometheus_client. Prints the markdown report and writes it, with
the raw figures, to var/bench/.

    python -m bench.run                   # everything, ~12 minutes
    python -m bench.run --smoke           # every phase, tiny (CI: tests/bench_smoke)
    python -m bench.run --phases throughput --variants off pull --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from bench import instructions, load, scrape
from bench.otlp_sink import OtlpSink
from bench.serve import VARIANTS, exports
from devstack.configs import REPO
from devstack.processes import free_port, start
from telemetry.runtime import resident_bytes

PHASES = ("instructions", "throughput", "cardinality", "scrape")
GOALS = {"pull": 0.90, "pull-traces": 0.85, "push": 0.90}  # throughput against off
SERVER_CPU, LOAD_CPU = "0", "1"
CONNECTIONS = 32
FULL = {
    "rounds": 10, "seconds": 4.0, "warmup": 3.0, "latency_rounds": 3, "junk_requests": 100_000,
    "series": [1000, 10000], "scrape_runs": 5, "requests": 50, "layouts": 3, "exports": 5,
    "collection_series": 1000, "collections": 3,
}  # fmt: skip
SMOKE = {
    "rounds": 1, "seconds": 1.0, "warmup": 1.0, "latency_rounds": 1, "junk_requests": 2000,
    "series": [100, 1000], "scrape_runs": 1, "requests": 40, "layouts": 2, "exports": 1,
    "collection_series": 100, "collections": 1,
}  # fmt: skip
VERSIONS = ("fastapi", "starlette", "uvicorn", "opentelemetry-sdk", "prometheus-client")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run of every phase (CI)")
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--rounds", type=int, help="interleaved throughput rounds (10)")
    parser.add_argument("--layouts", type=int, help="memory layouts instructions average (3)")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench")
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    for name, value in sizes.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    return args


def machine(pinned: bool) -> dict[str, Any]:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), "?")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", platform.system()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pinning": f"servers on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}" if pinned else "none",
        "load": load.tool(),
        "versions": {name: metadata.version(name) for name in VERSIONS},
    }


def taskset_works() -> bool:
    if (os.cpu_count() or 1) < 2:
        return False
    try:
        return subprocess.run(["taskset", "-c", LOAD_CPU, "true"], check=False).returncode == 0
    except OSError:
        return False


class Server:
    """One variant served by bench/serve.py, paused (SIGSTOP) while another is measured: an
    idle variant's push export or span batch must not land in another's measurement."""

    def __init__(self, name: str, env: dict[str, str], work: Path, cpu: str | None) -> None:
        self.name, port = name, free_port()
        self.url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "bench.serve", name, f"--port={port}"]
        if cpu is not None:
            argv = ["taskset", "-c", cpu, *argv]
        env = {**env, **VARIANTS[name].env}
        self.process = start(name, argv, env, work / f"{name}.log", f"{self.url}/health", 60)

    def pause(self, sig: signal.Signals = signal.SIGSTOP) -> None:
        if self.process.alive():
            os.killpg(self.process.pid, sig)

    def stop(self) -> None:
        self.pause(signal.SIGCONT)
        self.process.stop()


def finished_session(url: str) -> str:
    payload = {"session_type": "test_generation", "project_path": "/bench"}
    session_id = str(httpx.post(f"{url}/api/v2/sessions", json=payload).json()["id"])
    for _ in range(600):
        if httpx.get(f"{url}/api/v2/sessions/{session_id}").json()["status"] in (
            "completed",
            "failed",
        ):
            return session_id
        time.sleep(0.2)
    raise RuntimeError("benchmark session did not finish its workflow")


def throughput(args: argparse.Namespace, servers: dict[str, Server], cpu: str | None) -> Any:
    """Interleaved rounds at 32 connections, then at 1 (latency); the start rotates."""
    path = f"/api/v2/sessions/{finished_session(next(iter(servers.values())).url)}"
    names = list(servers)

    def measure(name: str, seconds: float, connections: int) -> dict[str, Any]:
        servers[name].pause(signal.SIGCONT)
        time.sleep(0.2)
        try:
            result = load.run(servers[name].url + path, seconds, connections, cpu)
        finally:
            servers[name].pause()
        return {**asdict(result), "rps": result.rps}

    for server in servers.values():
        assert httpx.get(server.url + path).status_code == 200, server.name
        server.pause()
    for name in names:
        measure(name, args.warmup, CONNECTIONS)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    latency: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(args.rounds + args.latency_rounds):
        loaded = round_ < args.rounds
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            measured = measure(name, args.seconds, CONNECTIONS if loaded else 1)
            (runs if loaded else latency)[name].append(measured)
        if loaded:
            print(
                f"  round {round_ + 1}: "
                + ", ".join(f"{n} {runs[n][-1]['rps']:.0f}" for n in names)
            )
    for server in servers.values():
        server.pause(signal.SIGCONT)
    return {"runs": runs, "latency": latency}


def summarise(data: dict[str, Any]) -> dict[str, dict[str, float]]:
    runs, latency, rows = data["runs"], data["latency"], {}

    def median(results: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in results)

    for name, results in runs.items():
        rows[name] = {
            "rps": median(results, "rps"),
            "p50_ms": median(results, "p50_ms"),
            "p99_ms": median(results, "p99_ms"),
            "c1_p50_ms": median(latency[name], "p50_ms"),
            "c1_p99_ms": median(latency[name], "p99_ms"),
            "errors": sum(r["errors"] for r in results),
            "non2xx": sum(r["non2xx"] for r in results),
        }
        if "off" in runs:  # each round against off's run of the same round
            pairs = zip(results, runs["off"], strict=True)
            rows[name]["ratio"] = statistics.median(r["rps"] / o["rps"] for r, o in pairs)
    return rows


def cardinality(server: Server, total: int, cpu: str | None) -> dict[str, Any]:
    """Random unmatched paths and Host headers: neither the series nor the memory may grow."""

    def series() -> set[str]:
        text = httpx.get(f"{server.url}/metrics", timeout=30).text
        # The series, values dropped: /metrics' own request counter moves, not its set.
        return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line[:1] not in "#"}

    url = f"{server.url}/"
    rate = max(load.run(url, 2, CONNECTIONS, cpu, junk_limit=10**9).rps, 100.0)  # warm-up
    before, rss_before = series(), resident_bytes(server.process.pid) or 0
    sent = non2xx = 0
    for _ in range(3):  # wrk waits out its duration: sized from the rate, topped up
        if sent >= total:
            break
        result = load.run(url, (total - sent) / rate * 1.3 + 1, CONNECTIONS, cpu, total - sent)
        sent, non2xx = sent + result.requests, non2xx + result.non2xx
    after, rss_after = series(), resident_bytes(server.process.pid) or 0
    return {
        "variant": server.name,
        "requests": sent,
        "non2xx": non2xx,
        "series_before": len(before),
        "series_after": len(after),
        "new_series": sorted(after - before)[:10],
        "rss_before_mib": rss_before / 2**20,
        "rss_growth_mib": (rss_after - rss_before) / 2**20,
    }


def served(args: argparse.Namespace, work: Path, cpu: str | None, report: dict[str, Any]) -> None:
    """The phases that need servers: throughput, then cardinality on pull."""
    names = args.variants if "throughput" in args.phases else ["pull"]
    env = {**os.environ, "TESTBOOST_DATABASE_URL": f"sqlite:///{work / 'bench.db'}"}
    env["TESTBOOST_LLM_SIM_LATENCY"] = "0.01"
    env.pop("TESTBOOST_API_KEY", None)
    sink = OtlpSink() if any(exports(name) for name in names) else None
    if sink is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint()
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    servers: dict[str, Server] = {}
    server_cpu = SERVER_CPU if cpu is not None else None
    try:
        for name in names:  # one at a time: each migrates the database at start-up
            servers[name] = Server(name, env, work, server_cpu)
        if "throughput" in args.phases:
            print("throughput rounds…", flush=True)
            report["raw"] = throughput(args, servers, cpu)
            report["throughput"] = summarise(report["raw"])
        if "cardinality" in args.phases and "pull" in servers:
            zipped = httpx.get(
                f"{servers['pull'].url}/metrics", headers={"Accept-Encoding": "gzip"}
            )
            report["gzip"] = zipped.headers.get("content-encoding") == "gzip"
            print("cardinality run…", flush=True)
            report["cardinality"] = cardinality(servers["pull"], args.junk_requests, cpu)
    finally:
        for server in servers.values():
            server.stop()
        if sink is not None:
            report["sink"] = dict(sink.counts)
            sink.stop()


def render(report: dict[str, Any]) -> str:
    m, args = report["machine"], report["args"]
    out = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['os']}, kernel {m['kernel']}, Python "
        f"{m['python']}; pinning: {m['pinning']}; load: {m['load']}; SQLite.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        *(f"Note: {note}" for note in report["notes"]),
    ]
    if "instructions" in report:
        out += ["", instructions.section(report["instructions"])]
    if "throughput" in report:
        out += [
            "",
            f"### Throughput: GET /api/v2/sessions/{{session_id}}, {CONNECTIONS} connections, "
            f"{args['rounds']} interleaved rounds of {args['seconds']:g} s",
            "",
            "| variant | req/s (median) | vs off | goal | p50 / p99 @32 | p50 / p99 @1 "
            "| errors / non-2xx |",
            "|---|---:|---:|---|---:|---:|---:|",
        ]
        for name, row in report["throughput"].items():
            ratio, goal = row.get("ratio", float("nan")), GOALS.get(name)
            verdict = f"≥ {goal:.2f} {'met' if ratio >= goal else 'NOT met'}" if goal else ""
            out.append(
                f"| {name} | {row['rps']:.0f} | {ratio:.3f} | {verdict} "
                f"| {row['p50_ms']:.2f} / {row['p99_ms']:.2f} ms "
                f"| {row['c1_p50_ms']:.3f} / {row['c1_p99_ms']:.3f} ms "
                f"| {row['errors']} / {row['non2xx']} |"
            )
        out += ["", *(f"- `{name}`: {VARIANTS[name].description}" for name in report["throughput"])]
        out.append(f"- OTLP receiver: {report.get('sink', {})}")
    if "cardinality" in report:
        c = report["cardinality"]
        met = c["series_after"] == c["series_before"] and c["rss_growth_mib"] <= 5
        out += [
            "",
            f"### Cardinality and memory: {c['requests']:,} requests, random unmatched paths "
            f"and Host headers (`{c['variant']}`)",
            "",
            "| series before | series after | RSS before | RSS growth | goal |",
            "|---:|---:|---:|---:|---|",
            f"| {c['series_before']} | {c['series_after']} | {c['rss_before_mib']:.1f} MiB "
            f"| {c['rss_growth_mib']:+.1f} MiB | {'met' if met else 'NOT met'} |",
            "",
            f"`/metrics` asked for gzip: {'gzip' if report['gzip'] else 'NOT gzip'}.",
        ]
    if "scrape_rows" in report:
        out += [
            "",
            f"### Scrape rendering, in process (best of {args['scrape_runs']})",
            "",
            scrape.table(report["scrape_rows"]),
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="testboost-bench-"))
    pinned = taskset_works()
    cpu = LOAD_CPU if pinned else None
    report: dict[str, Any] = {
        "machine": machine(pinned),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "notes": [],
    }
    if "instructions" in args.phases:
        if not instructions.have_valgrind():
            report["notes"].append("instructions skipped: valgrind is not installed")
        else:
            print("instruction counts (callgrind)…", flush=True)
            counted = [v for v in VARIANTS if v in args.variants]
            report["instructions"] = instructions.run(
                counted, args.requests, args.layouts, args.exports, work / "instructions"
            )
            report["instructions"]["collections"] = instructions.run_collections(
                args.collection_series, args.collections, work / "collections"
            )
    if pinned:  # the OTLP receiver runs in this process, beside the load generator
        os.sched_setaffinity(0, {int(LOAD_CPU)})
    if {"throughput", "cardinality"} & set(args.phases):
        served(args, work, cpu, report)
    if "scrape" in args.phases:
        print("scrape rendering…", flush=True)
        report["scrape_rows"] = scrape.run(args.series, args.scrape_runs)
    report["seconds"] = time.monotonic() - started
    text = render(report)
    kind = "smoke" if args.smoke else "full"
    raw = json.dumps(report, indent=2, default=str)
    (args.out / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(raw)
    (args.out / f"{kind}-latest.json").write_text(raw)
    (args.out / f"{kind}-latest.md").write_text(text + "\n")
    print(f"\n{text}\n\n({report['seconds']:.0f} s; written to {args.out}/{kind}-latest.md)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
