"""`make bench`: instructions per request (callgrind), throughput and latency of the API
variants side by side (interleaved rounds), the scrape micro-benchmark, and the
cardinality/memory run. Prints markdown tables and writes them, with the raw figures, to
var/bench/.

    python -m bench.run                   # the full run, ~14 minutes
    python -m bench.run --smoke           # every phase, tiny, ~80 s (CI)
    python -m bench.run --variants off pull --rounds 3 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import instructions, load, overhead, scrape, workers
from bench.variants import (
    ROOT,
    VARIANTS,
    Process,
    Server,
    get,
    make_sink,
    post_json,
    rss_mib,
    taskset_works,
    temp_dir,
)

SESSION_ROUTE = "/api/v2/sessions/{session_id}"
GOALS = {"pull": 0.90, "pull-traces": 0.85, "push": 0.90}
SERVER_CPU, LOAD_CPU = "0", "1"
PHASES = ("instructions", "throughput", "cardinality", "scrape", "overhead", "workers")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run of every phase (CI)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument(
        "--phases", nargs="+", choices=PHASES, default=list(PHASES), help="default: all"
    )
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=4.0, help="per run, per variant")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--latency-rounds", type=int, default=3)
    parser.add_argument("--latency-seconds", type=float, default=4.0)
    parser.add_argument("--random-requests", type=int, default=100_000)
    parser.add_argument("--series", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--scrape-runs", type=int, default=5)
    parser.add_argument("--overhead-requests", type=int, default=20_000)
    parser.add_argument(
        "--instruction-requests",
        type=int,
        default=instructions.REQUESTS,
        help="N of the instructions phase (children run N and 2N requests)",
    )
    parser.add_argument(
        "--instruction-layouts",
        type=int,
        default=instructions.LAYOUTS,
        help="memory layouts the instruction counts are averaged over",
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="serve from a fresh PostgreSQL database (TESTBOOST_TEST_POSTGRES_URL's server) "
        "instead of SQLite",
    )
    parser.add_argument("--database-url", help="serve from this database as it is")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.seconds, args.warmup = 1, 1.0, 0.5
        args.latency_rounds, args.latency_seconds = 1, 1.0
        args.random_requests, args.series, args.scrape_runs = 2000, [100, 1000], 1
        args.overhead_requests = 1000
        args.instruction_requests, args.instruction_layouts = 10, 1
    return args


def database_url(args: argparse.Namespace, work: Path) -> str:
    if args.database_url:
        return str(args.database_url)
    # SQLite by default: the API process then does all the work of a request on its own core,
    # so telemetry's share is not diluted by waiting on a database that shares the load
    # generator's core. --postgres measures the production setup.
    sqlite = f"sqlite:///{work / 'bench.db'}"
    if not args.postgres:
        return sqlite
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = os.environ.get(
        "TESTBOOST_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:55432/postgres"
    )
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text('DROP DATABASE IF EXISTS "testboost_bench" WITH (FORCE)'))
            conn.execute(text('CREATE DATABASE "testboost_bench"'))
        admin.dispose()
    except Exception as exc:
        print(f"PostgreSQL unavailable ({type(exc).__name__}); using SQLite", file=sys.stderr)
        return sqlite
    url = make_url(admin_url).set(database="testboost_bench")
    return url.render_as_string(hide_password=False)


def machine(pinned: bool, db_url: str) -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {
        name: metadata.version(name)
        for name in (
            "fastapi",
            "starlette",
            "uvicorn",
            "opentelemetry-sdk",
            "opentelemetry-exporter-prometheus",
            "prometheus-client",
            "prometheus-fastapi-instrumentator",
            "opentelemetry-instrumentation-fastapi",
        )
        if _installed(name)
    }
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "pinning": f"server on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}" if pinned else "none",
        "load_tool": "wrk" if load.have_wrk() else "python fallback (timings not comparable)",
        "database": db_url.split("@")[-1].split("?")[0] if "@" in db_url else "sqlite",
        "versions": versions,
    }


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def _os_name() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", platform.system())
    except OSError:
        return platform.system()


def start_servers(
    args: argparse.Namespace, base_env: dict[str, str], work: Path, cpu: str | None
) -> tuple[dict[str, Server], list[str]]:
    notes: list[str] = []
    servers: dict[str, Server] = {}
    for name in args.variants:
        # One at a time: each runs the migrations at start-up.
        server = Server(VARIANTS[name], base_env, work, cpu)
        try:
            server.wait_healthy()
        except RuntimeError:
            server.stop()
            raise
        servers[name] = server
    return servers, notes


def make_session(url: str) -> str:
    created = post_json(
        f"{url}/api/v2/sessions", {"session_type": "test_generation", "project_path": "/bench"}
    )
    session_id = str(created["id"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, body = get(f"{url}/api/v2/sessions/{session_id}")
        if status == 200 and json.loads(body)["status"] in ("completed", "failed"):
            return session_id
        time.sleep(0.2)
    raise RuntimeError("benchmark session did not finish its workflow")


def throughput(
    args: argparse.Namespace, servers: dict[str, Server], session_id: str, cpu: str | None
) -> dict[str, Any]:
    path = f"/api/v2/sessions/{session_id}"
    names = list(servers)

    def measure(name: str, seconds: float, connections: int) -> load.LoadResult:
        # Only the measured variant runs; the others are paused (see Process.pause).
        server = servers[name]
        server.resume()
        time.sleep(0.2)
        try:
            return load.run(server.url + path, seconds, connections, cpu=cpu)
        finally:
            server.pause()

    for name in names:  # every variant answers the route, and gets warm
        status, _ = get(servers[name].url + path)
        assert status == 200, (name, status)
        servers[name].pause()
    for name in names:
        measure(name, args.warmup, args.connections)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        # A B C …, then B C … A: no variant always runs first or right after another.
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            result = measure(name, args.seconds, args.connections)
            runs[name].append({"round": round_, **asdict(result), "rps": result.rps})
        print(
            f"  round {round_ + 1}/{args.rounds}: "
            + ", ".join(f"{n} {runs[n][-1]['rps']:.0f}" for n in names),
            flush=True,
        )
    latency: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(args.latency_rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            latency[name].append(asdict(measure(name, args.latency_seconds, 1)))
    for server in servers.values():
        server.resume()
    return {"runs": runs, "latency": latency}


def summarise(data: dict[str, Any]) -> dict[str, dict[str, float]]:
    runs, latency = data["runs"], data["latency"]
    base = runs.get("off")
    rows = {}
    for name, results in runs.items():
        row = {
            "rps": statistics.median(r["rps"] for r in results),
            "p50_ms": statistics.median(r["p50_ms"] for r in results),
            "p99_ms": statistics.median(r["p99_ms"] for r in results),
            "errors": sum(r["errors"] for r in results),
            "non2xx": sum(r["non2xx"] for r in results),
            "c1_p50_ms": statistics.median(r["p50_ms"] for r in latency[name]),
            "c1_p99_ms": statistics.median(r["p99_ms"] for r in latency[name]),
        }
        if base:
            # Each round's ratio against the baseline run of that same round, then the median.
            row["ratio"] = statistics.median(
                r["rps"] / b["rps"] for r, b in zip(results, base, strict=True) if b["rps"]
            )
        rows[name] = row
    if "off" in rows:
        for row in rows.values():
            row["added_p50_ms"] = row["c1_p50_ms"] - rows["off"]["c1_p50_ms"]
            row["added_p99_ms"] = row["c1_p99_ms"] - rows["off"]["c1_p99_ms"]
    return rows


def cardinality(args: argparse.Namespace, server: Server, cpu: str | None) -> dict[str, Any]:
    """Random unmatched paths and Host headers: the series must not move, nor the memory."""

    def series() -> set[str]:
        status, body = get(f"{server.url}/metrics", timeout=30)
        assert status == 200
        # The series themselves, values dropped; /metrics' own request counter moves, not its set.
        return {
            line.rsplit(" ", 1)[0]
            for line in body.decode().splitlines()
            if line and not line.startswith("#")
        }

    url = f"{server.url}/"
    # wrk stops a thread after `limit` responses but still waits out its duration: size the
    # duration from the rate a short warm-up run of the same traffic reached.
    warm = load.run(url, 2, args.connections, cpu=cpu, random_limit=None, seed=1, junk=True)
    rate = max(warm.rps, 100.0)
    before_series = series()
    series()
    rss_before = rss_mib(server.pid)
    started = time.monotonic()
    sent = non2xx = 0
    for attempt in range(3):  # top up if the rate dropped; bounded
        left = args.random_requests - sent
        if left <= 0:
            break
        result = load.run(
            url, left / rate * 1.3 + 1, args.connections, cpu=cpu, random_limit=left, seed=attempt
        )
        sent, non2xx = sent + result.requests, non2xx + result.non2xx
    elapsed = time.monotonic() - started
    after_series = series()
    rss_after = rss_mib(server.pid)
    return {
        "variant": server.name,
        "requests": sent,
        "non2xx": non2xx,
        "seconds": elapsed,
        "series_before": len(before_series),
        "series_after": len(after_series),
        "new_series": sorted(after_series - before_series)[:10],
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
        "rss_growth_mib": rss_after - rss_before,
    }


def http_scrape(server: Server) -> dict[str, Any]:
    started = time.perf_counter()
    status, body = get(f"{server.url}/metrics", headers={"Accept-Encoding": "gzip"})
    elapsed = time.perf_counter() - started
    assert status == 200
    return {"gzip": body[:2] == b"\x1f\x8b", "bytes": len(body), "ms": elapsed * 1000}


def sink_stats(endpoint: str) -> dict[str, int]:
    stats: dict[str, int] = json.loads(get(f"{endpoint}/stats")[1])
    return stats


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    report.setdefault("throughput", {})
    out = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['os']}, kernel {m['kernel']}, Python "
        f"{m['python']}; pinning: {m['pinning']}; load: {m['load_tool']}; DB: {m['database']}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        "",
    ]
    if report.get("instructions"):
        out += [instructions.section(report["instructions"]), ""]
    if report["throughput"]:
        out += [
            f"### Throughput: GET {SESSION_ROUTE}, {report['args']['connections']} connections, "
            f"{report['args']['rounds']} interleaved rounds of {report['args']['seconds']:g} s",
            "",
            "| variant | req/s (median) | vs off | goal | p50 / p99 @32 | p50 / p99 @1 "
            "| added p50 / p99 @1 | errors / non-2xx |",
            "|---|---:|---:|---|---:|---:|---:|---:|",
        ]
    for name, row in report["throughput"].items():
        goal = GOALS.get(name)
        verdict = ""
        if goal is not None and "ratio" in row:
            verdict = f"≥ {goal:.2f} {'met' if row['ratio'] >= goal else 'NOT met'}"
        out.append(
            f"| {name} | {row['rps']:.0f} | {row.get('ratio', float('nan')):.3f} | {verdict} "
            f"| {row['p50_ms']:.2f} / {row['p99_ms']:.2f} ms "
            f"| {row['c1_p50_ms']:.3f} / {row['c1_p99_ms']:.3f} ms "
            f"| {row.get('added_p50_ms', 0) * 1000:+.0f} / "
            f"{row.get('added_p99_ms', 0) * 1000:+.0f} µs "
            f"| {row['errors']} / {row['non2xx']} |"
        )
    out += ["", "Variants:"] + [
        f"- `{name}`: {VARIANTS[name].description}" for name in report["throughput"]
    ]
    for note in report["notes"]:
        out.append(f"- note: {note}")
    if report.get("http_scrape"):
        s = report["http_scrape"]
        out.append(
            f"- `/metrics` over HTTP on the loaded pull server, Accept-Encoding gzip: "
            f"{'gzip' if s['gzip'] else 'NOT gzip'}, {s['bytes']} bytes, {s['ms']:.1f} ms"
        )
    if report.get("sink"):
        out.append(f"- OTLP sink received: {report['sink']}")
    if report.get("overhead"):
        out += [
            "",
            "### HTTP telemetry per request, in-process (ASGI app that answers at once; median)",
            "",
            report["overhead"],
            "",
            report.get("overhead_sql", ""),
        ]
    if report.get("scrape"):
        out += ["", "### Scrape rendering (in-process, median of runs)", "", report["scrape"]]
    if report.get("runtime_cost"):
        r = report["runtime_cost"]
        out.append(
            f"\nRuntime families (process_*, python_gc_*) per scrape, beside 1,000 counter "
            f"lines: {r['without_ms']:.2f} ms without, {r['with_ms']:.2f} ms with: "
            f"+{r['added_ms']:.2f} ms."
        )
    if report.get("workers"):
        out += [
            "",
            "### Several workers, pull (merged /metrics)",
            "",
            workers.table(report["workers"]),
        ]
    if report.get("cardinality"):
        c = report["cardinality"]
        out += [
            "",
            f"### Cardinality and memory: {c['requests']:,} requests, random unmatched paths "
            f"and random Host headers (`{c['variant']}`)",
            "",
            "| series before | series after | RSS before | RSS after | RSS growth | goal |",
            "|---:|---:|---:|---:|---:|---|",
            f"| {c['series_before']} | {c['series_after']} | {c['rss_before_mib']:.1f} MiB "
            f"| {c['rss_after_mib']:.1f} MiB | {c['rss_growth_mib']:+.1f} MiB | "
            + (
                "met"
                if c["series_after"] == c["series_before"] and c["rss_growth_mib"] <= 5
                else "NOT met"
            )
            + " |",
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    work = temp_dir("testboost-bench-")
    pinned = taskset_works()
    cpu = LOAD_CPU if pinned else None
    server_cpu = SERVER_CPU if pinned else None
    db_url = database_url(args, work)
    report: dict[str, Any] = {
        "machine": machine(pinned, db_url),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "notes": [],
    }
    if "instructions" in args.phases:
        counted = [v for v in instructions.INSTRUCTION_VARIANTS if v in args.variants]
        if not instructions.have_valgrind():
            report["notes"].append("instructions phase skipped: valgrind is not installed")
        elif counted:
            print("instruction counts (callgrind)…", flush=True)
            report["instructions"] = instructions.run(
                counted,
                args.instruction_requests,
                args.instruction_layouts,
                exports=1 if args.smoke else instructions.EXPORTS,
                work=work / "instructions",
            )
            report["instructions"]["collections"] = instructions.run_collections(
                series=100 if args.smoke else instructions.COLLECTION_SERIES,
                collections=1 if args.smoke else instructions.COLLECTIONS,
                work=work / "collections",
            )
    sink: Process | None = None
    servers: dict[str, Server] = {}
    if "throughput" not in args.phases:
        args.variants = ["pull"] if "cardinality" in args.phases else []
    try:
        base_env = {
            **os.environ,
            "TESTBOOST_DATABASE_URL": db_url,
            "TESTBOOST_LLM_SIM_LATENCY": "0.01",
        }
        base_env.pop("TESTBOOST_API_KEY", None)
        if any(VARIANTS[v].needs_sink for v in args.variants):
            sink, endpoint = make_sink(work, cpu)
            base_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
            base_env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
        print(f"starting {len(args.variants)} variants…", flush=True)
        servers, notes = start_servers(args, base_env, work, server_cpu)
        report["notes"] += notes
        if "throughput" in args.phases:
            session_id = make_session(next(iter(servers.values())).url)
            print("throughput rounds…", flush=True)
            data = throughput(args, servers, session_id, cpu)
            report["raw"] = data
            report["throughput"] = summarise(data)
        if "pull" in servers and "cardinality" in args.phases:
            report["http_scrape"] = http_scrape(servers["pull"])
            print("cardinality run…", flush=True)
            report["cardinality"] = cardinality(args, servers["pull"], cpu)
        if sink is not None:
            report["sink"] = sink_stats(base_env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    finally:
        for server in servers.values():
            server.stop()
        if sink is not None:
            sink.stop()
    if pinned:
        os.sched_setaffinity(0, {int(SERVER_CPU)})
    if "scrape" in args.phases:
        print("scrape micro-benchmark…", flush=True)
        rows = scrape.run(args.series, args.scrape_runs)
        report["scrape_rows"] = rows
        report["scrape"] = scrape.table(rows)
        report["runtime_cost"] = scrape.runtime_cost(runs=20 if args.smoke else 200)
    if "workers" in args.phases:
        print("several workers (merged /metrics)…", flush=True)
        report["workers"] = {
            "throughput": workers.throughput(
                {**os.environ, "TESTBOOST_DATABASE_URL": f"sqlite:///{work / 'workers.db'}"},
                args.rounds,
                args.seconds,
                args.connections,
                work,
            ),
            "scrape": workers.scrape(100 if args.smoke else 1000, args.scrape_runs + 2),
        }
    if "overhead" in args.phases:
        print("middleware overhead…", flush=True)
        report["overhead_rows"] = overhead.run(args.overhead_requests, 3)
        report["overhead"] = overhead.table(report["overhead_rows"])
        report["overhead_sql"] = overhead.sql_table(
            work / "sql-overhead.db", 500 if args.smoke else 5_000
        )
    report["seconds"] = time.monotonic() - started
    text = render(report)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kind = "smoke" if args.smoke else "full"
    (args.out / f"{kind}-{stamp}.json").write_text(json.dumps(report, indent=2, default=str))
    (args.out / f"{kind}-latest.md").write_text(text + "\n")
    (args.out / f"{kind}-latest.json").write_text(json.dumps(report, indent=2, default=str))
    print()
    print(text)
    print(f"\n({report['seconds']:.0f} s; written to {args.out}/{kind}-latest.md)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
