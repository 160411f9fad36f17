"""Instructions per request, counted by callgrind: what telemetry costs, not timed.

Each variant of bench/serve.py is built in a child process as `testboost serve` builds it and
called straight through its ASGI interface as uvicorn calls it for wrk's requests (same
scope, a Host header, the access log line), without sockets: GET /api/v2/sessions/{id} of one
finished session on SQLite. Callgrind counts every thread of the child (span and push exports
included) from the end of its start-up to its exit; two children with N and 2N requests give
(Ir(2N) - Ir(N)) / N, in which start-up, shutdown and first-request costs cancel. The children
are forked from one "zygote" under valgrind that imported the app once (~5 s a child saved).

Nothing is left to chance or the clock: a fixed hash seed and environment; trace ids drawn so
that exactly every tenth request is sampled; no timers (span batches leave when full or at
shutdown; push exports are counted in a child of their own and charged one per 1,000
requests, the throughput phase's rate). The one input left is memory layout (CPython's caches
depend on addresses: ~1.5 %), so each figure is a mean over `layouts` zygotes whose
environments differ only in size.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import importlib
import json
import logging
import mmap
import os
import platform
import random
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from bench.otlp_sink import OtlpSink
from bench.serve import VARIANTS, exports
from devstack.configs import REPO

ROUTE = "/api/v2/sessions/{session_id}"
EXPORT_EVERY = 1000  # push: one export per this many requests (every 1 s at ~1,000 req/s)
GOALS = {"pull": 50_000, "pull-traces": 250_000}  # instructions telemetry may add per request
FLOOR_GOAL = 2.0  # pull may add at most this many times what the floor adds
# A collection's cost per series: (variant, workers) holding S HTTP label sets.
COLLECTIONS = {"scrape": ("pull", 1), "scrape, 4 workers": ("pull", 4), "export": ("push", 1)}
PRELOAD = (  # what the zygote imports before it forks
    *("app.main", "app.core.config", "app.core.logs", "alembic.command", "alembic.config"),
    *("alembic.runtime.migration", "sqlalchemy.dialects.sqlite", "uvicorn.protocols.utils"),
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    *("uvloop", "bench.serve", "opentelemetry.exporter.prometheus"),
    *("opentelemetry.instrumentation.fastapi", "prometheus_fastapi_instrumentator"),
)
FIXED_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "TESTBOOST_LLM_SIM_LATENCY": "0.01",
    "TESTBOOST_WORKFLOW_LEASE_TTL": "3600",  # the lease keeper sleeps through the run
}
NO_TIMERS = {"OTEL_BSP_SCHEDULE_DELAY": "86400000", "OTEL_METRIC_EXPORT_INTERVAL": "86400000"}


# --- in the child ---------------------------------------------------------------------------


class Driver:
    """Calls the app as uvicorn's httptools protocol does: the same scope keys, a Host header
    only, the access log line at response start."""

    def __init__(self, app: Any) -> None:
        from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

        self.app = app
        self.access_log = logging.getLogger("uvicorn.access")
        self.log_access = self.access_log.hasHandlers()
        self.client_addr, self.full_path = get_client_addr, get_path_with_query_string

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        headers = [(b"host", b"127.0.0.1:8000")]
        if body:
            headers += [(b"content-type", b"application/json")]
            headers += [(b"content-length", str(len(body)).encode())]
        scope: Any = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "root_path": "",
            "headers": headers,
            "state": {},
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
        }
        finished = asyncio.Event()
        received, status, chunks = False, 0, []

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": body, "more_body": False}
            await finished.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if self.log_access:
                    where = self.client_addr(scope), method, self.full_path(scope), "1.1"
                    self.access_log.info('%s - "%s %s HTTP/%s" %d', *where, status)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    finished.set()

        await self.app(scope, receive, send)
        return status, b"".join(chunks)


# valgrind.h's client request on amd64 as a function `long request(unsigned long args[6])`:
# the magic preamble (rotations of rdi, then xchg rbx,rbx) with rax = args; outside Valgrind
# it does nothing. Lets a child switch counting on without a compiler.
_CLIENT_REQUEST = bytes.fromhex("4889f831d248c1c70348c1c70d48c1c73d48c1c7334887db4889d0c3")
CALLGRIND_START_INSTRUMENTATION = (ord("C") << 24 | ord("T") << 16) + 4  # callgrind.h
CAN_START = sys.platform == "linux" and platform.machine() in ("x86_64", "amd64")


def start_counting() -> None:
    if not CAN_START:
        return
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(_CLIENT_REQUEST)
    function = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_void_p)(
        ctypes.addressof(ctypes.c_char.from_buffer(page))
    )
    args = (ctypes.c_ulong * 6)(CALLGRIND_START_INSTRUMENTATION, 0, 0, 0, 0, 0)
    function(ctypes.addressof(args))
    del function


def _build(variant: str = "off") -> tuple[Any, Driver]:
    from app.core.config import load_settings
    from app.core.logs import configure_logging
    from bench.serve import build

    configure_logging(load_settings().log_level)
    app = build(variant)
    return app, Driver(app)


def _run(coro: Any) -> Any:
    with contextlib.suppress(ImportError):  # uvicorn's loop="auto" picks uvloop when present
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)


def prepare() -> str:
    """Migrate the database; one session whose workflow has finished."""
    app, driver = _build()

    async def go() -> str:
        async with app.router.lifespan_context(app):
            payload = {"session_type": "test_generation", "project_path": "/bench"}
            status, body = await driver.request(
                "POST", "/api/v2/sessions", json.dumps(payload).encode()
            )
            assert status == 201, (status, body)
            session_id = str(json.loads(body)["id"])
            for _ in range(1200):
                status, body = await driver.request("GET", ROUTE.format(session_id=session_id))
                if status == 200 and json.loads(body)["status"] in ("completed", "failed"):
                    return session_id
                await asyncio.sleep(0.1)
        raise RuntimeError("benchmark session did not finish its workflow")

    result: str = _run(go())
    return result


def sampling_seeds(requests: int) -> list[int]:
    """A seed per request such that exactly every tenth is sampled: the SDK draws trace ids
    from `random.getrandbits`, and TraceIdRatioBased samples ids whose low 64 bits are below a
    bound. Left to chance, 50 requests would have 5 ± 2 sampled."""
    ratio = float(VARIANTS["pull-traces"].env["OTEL_TRACES_SAMPLER_ARG"])
    sampler, every = TraceIdRatioBased(ratio), round(1 / ratio)
    pools: dict[bool, list[int]] = {True: [], False: []}
    seed = 0
    while len(pools[True]) < -(-requests // every) or len(pools[False]) < requests:
        trace_id = random.Random(seed).getrandbits(128)
        pools[trace_id & sampler.TRACE_ID_LIMIT < sampler.bound].append(seed)
        seed += 1
    sampled, unsampled = iter(pools[True]), iter(pools[False])
    return [next(sampled) if i % every == 0 else next(unsampled) for i in range(requests)]


def drive(variant: str, requests: int, session_id: str, push_exports: int) -> dict[str, Any]:
    """Start the app, count from here: `requests` GETs, then `push_exports` exports, stop."""
    random.seed(0)  # start-up's own root spans sampled alike in every child
    app, driver = _build(variant)
    path = ROUTE.format(session_id=session_id)
    # A generator per request, made now: putting one in place is a module attribute store.
    draws = [random.Random(seed).getrandbits for seed in sampling_seeds(requests)]

    async def go() -> dict[int, int]:
        statuses: dict[int, int] = {}
        async with app.router.lifespan_context(app):
            start_counting()
            for draw in draws:
                random.getrandbits = draw  # this request's trace id, hence its sampling
                status, _ = await driver.request("GET", path)
                statuses[status] = statuses.get(status, 0) + 1
            for _ in range(push_exports):
                app.state.telemetry.meter_provider.force_flush()
            random.getrandbits = random.Random(1).getrandbits  # shutdown's spans alike
        return statuses

    return {"statuses": _run(go())}


def collect(series: int, collections: int, workers: int) -> dict[str, Any]:
    """Telemetry as the app sets it up holding `series` settled HTTP label sets, then
    `collections` scrapes (merged with `workers` - 1 other workers' publications) or push
    exports. The first collection, which fills the renderer's cache, is not counted."""
    import telemetry
    from telemetry import metrics_dir, multiprocess

    others: list[subprocess.Popen[bytes]] = []
    if workers > 1:  # as `testboost serve --workers` runs them: a private shared directory
        os.environ["TESTBOOST_METRICS_DIR"] = tempfile.mkdtemp(prefix="bench-workers-")
    config = dataclasses.replace(telemetry.TelemetryConfig.from_env(), new_series_hold_ms=0)
    tel = telemetry.setup(config)
    assert tel.instruments is not None
    for index in range(series):
        tel.instruments.http_request("GET", f"/api/v2/route{index}/{{id}}", "200", 0.01 * index)
    if tel.workers is not None and tel.pull_reader is not None:
        tel.workers.stop()  # publishes once; no publishing thread while counted
        payload = multiprocess.encode(multiprocess.publishable(tel.pull_reader.snapshot()))
        for _ in range(workers - 1):
            others.append(subprocess.Popen(["sleep", "3600"]))
            name = f"{metrics_dir.identity(others[-1].pid)}{multiprocess.SUFFIX}"
            (tel.workers.directory / name).write_bytes(payload)
    once: Any = tel.meter_provider.force_flush if tel.config.push else tel.pull_reader.render  # type: ignore[union-attr]
    once()
    start_counting()
    for _ in range(collections):
        once()
    for other in others:
        other.kill()
    if tel.workers is not None:
        shutil.rmtree(tel.workers.directory)
    return {"statuses": {}}


def zygote() -> None:
    """Under callgrind, counting off: import once, then fork a child per job read on stdin
    (a JSON line each); report each child's end on stdout."""
    for name in PRELOAD:
        with contextlib.suppress(ImportError):  # uvloop, say: the child does without
            importlib.import_module(name)
    if threading.active_count() != 1:
        raise RuntimeError("a thread started during the imports: forking would not be safe")
    print(json.dumps({"ready": os.getpid()}), flush=True)
    running: dict[int, str] = {}
    pending, reading = b"", True
    while reading or running:
        if reading and select.select([0], [], [], 0.05)[0]:
            data = os.read(0, 65536)
            reading = bool(data)
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                job = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _child(job)
                running[pid] = job["id"]
        while running:
            pid, status = os.waitpid(-1, os.WNOHANG if reading else 0)
            if pid == 0:
                break
            code = os.waitstatus_to_exitcode(status)
            print(json.dumps({"id": running.pop(pid), "pid": pid, "code": code}), flush=True)


def _child(job: dict[str, Any]) -> NoReturn:
    code = 1
    try:
        log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.environ.update(job["env"])
        if "series" in job:
            outcome = collect(job["series"], job["requests"], job["workers"])
        else:
            outcome = drive(job["variant"], job["requests"], job["session"], job["exports"])
        Path(job["result"]).write_text(json.dumps(outcome))
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        # The app has stopped: skip the interpreter's teardown, the same in every child.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


# --- in the parent --------------------------------------------------------------------------


def have_valgrind() -> bool:
    return shutil.which("valgrind") is not None


def count(
    plan: list[tuple[str, int, int]],
    env: dict[str, str],
    work: Path,
    sink: OtlpSink,
    extra: dict[str, Any],
) -> list[dict[str, int]]:
    """Each (variant, requests, exports) of `plan` counted in a child of one zygote, two at a
    time: its instructions, and for traces the root spans the sink received from it."""
    log = (work / "zygote.log").open("wb")
    zygote = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--instr-atstart={'no' if CAN_START else 'yes'}",
            f"--callgrind-out-file={work}/callgrind.%p",
            sys.executable,
            "-m",
            "bench.instructions",
            "--zygote",
        ],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    assert zygote.stdin is not None and zygote.stdout is not None

    def message() -> dict[str, Any]:
        line = zygote.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(
                f"the callgrind zygote ended:\n{(work / 'zygote.log').read_text()[-3000:]}"
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    (work / f"callgrind.{message()['ready']}").unlink(missing_ok=True)
    results: dict[str, dict[str, int]] = {}
    waiting = [(f"{index:04d}", *job) for index, job in enumerate(plan)]
    running: dict[str, tuple[str, int]] = {}
    try:
        while waiting or running:
            while waiting and len(running) < 2:
                tag, variant, requests, push_exports = waiting.pop(0)
                child_env = {**VARIANTS[variant].env, **NO_TIMERS}
                if exports(variant):  # an endpoint of the same length for every child
                    child_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint(f"/{tag}")
                    child_env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
                job = {"id": tag, "variant": variant, "requests": requests, "env": child_env}
                job |= {"exports": push_exports, "log": f"{work}/{tag}.log", **extra}
                job["result"] = f"{work}/{tag}.json"
                zygote.stdin.write(json.dumps(job).encode() + b"\n")
                zygote.stdin.flush()
                running[tag] = (variant, requests)
            done = message()
            tag, pid = done["id"], done["pid"]
            variant, requests = running.pop(tag)
            child_log = work / f"{tag}.log"
            if done["code"] != 0:
                tail = child_log.read_text()[-3000:]
                raise RuntimeError(f"{variant} x{requests} under callgrind failed:\n{tail}")
            statuses = json.loads((work / f"{tag}.json").read_text())["statuses"]
            if "series" not in extra and statuses != {"200": requests}:
                raise RuntimeError(f"{variant}: not every request answered 200: {statuses}")
            out = work / f"callgrind.{pid}"
            lines = out.read_text().splitlines()
            totals = next(line for line in lines if line.startswith(("totals:", "summary:")))
            roots = sink.counts[f"/{tag}/v1/traces:roots"]
            results[tag] = {"ir": int(totals.split()[1]), "roots": roots}
            for path in (child_log, work / f"{tag}.json", out):
                path.unlink()
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=60)
        log.close()
    return [results[f"{index:04d}"] for index in range(len(plan))]


def prepared_env(work: Path) -> tuple[dict[str, str], str]:
    """The zygote's whole environment (nothing inherited: the caller's variables would change
    what the app does and, by their size, the memory layout), and the prepared session."""
    env = {**FIXED_ENV, "TESTBOOST_DATABASE_URL": f"sqlite:///{work / 'instructions.db'}"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.instructions", "--prepare"],
        cwd=REPO,
        env={**env, **NO_TIMERS, **VARIANTS["off"].env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"preparing the database failed:\n{done.stderr[-3000:]}")
    return env, done.stdout.split()[-1]


def run(
    variants: list[str], requests: int, layouts: int, push_exports: int, work: Path
) -> dict[str, Any]:
    """Every variant in `layouts` memory layouts, N and 2N requests each; push also N
    requests then `push_exports` exports (first layout), charged 1/EXPORT_EVERY a request."""
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    env, session_id = prepared_env(work)
    sink = OtlpSink()
    per_layout: dict[str, list[float]] = {name: [] for name in variants}
    rows: dict[str, dict[str, Any]] = {name: {"requests": requests} for name in variants}
    try:
        for layout in range(layouts):
            plan = [(v, n, 0) for v in variants for n in (requests, 2 * requests)]
            if layout == 0 and "push" in variants:
                plan.append(("push", requests, push_exports))
            plan.sort(key=lambda job: -job[1] - job[2])  # longest first: the last end together
            layout_env = {**env, "TESTBOOST_BENCH_LAYOUT": "x" * (40 * layout)}
            counts = count(plan, layout_env, work, sink, {"session": session_id})
            by_job = dict(zip(plan, counts, strict=True))
            for name in variants:
                small, large = by_job[(name, requests, 0)], by_job[(name, 2 * requests, 0)]
                per_layout[name].append((large["ir"] - small["ir"]) / requests)
                if name == "pull-traces" and layout == 0:
                    rows[name]["sampled"] = large["roots"] - small["roots"]
            if layout == 0 and "push" in variants:
                export = (
                    by_job[("push", requests, push_exports)]["ir"]
                    - by_job[("push", requests, 0)]["ir"]
                ) / push_exports
                rows["push"]["export"] = export
    finally:
        sink.stop()
    if "push" in rows:  # per_layout holds the request path alone so far
        rows["push"]["path"] = statistics.mean(per_layout["push"])
        per_layout["push"] = [p + rows["push"]["export"] / EXPORT_EVERY for p in per_layout["push"]]
    for name, row in rows.items():
        row["per_layout"] = per_layout[name]
        row["ir"] = statistics.mean(per_layout[name])
        if "off" in rows:
            added = [v - o for v, o in zip(per_layout[name], per_layout["off"], strict=True)]
            row["added"] = statistics.mean(added)
            row["added_range"] = [min(added), max(added)]
            row["ratio"] = row["ir"] / statistics.mean(per_layout["off"])
    return {
        "rows": rows,
        "requests": requests,
        "layouts": layouts,
        "seconds": time.monotonic() - started,
    }


def run_collections(series: int, collections: int, work: Path) -> dict[str, Any]:
    """Instructions per series of one collection: (Ir(2C) - Ir(C)) / C / S, one layout (a
    collection is S times a request's work: layout moves it by far less)."""
    work.mkdir(parents=True, exist_ok=True)
    env = {**FIXED_ENV, "TESTBOOST_DATABASE_URL": f"sqlite:///{work / 'unused.db'}"}
    sink, rows = OtlpSink(), {}
    try:
        for kind, (variant, workers) in COLLECTIONS.items():
            plan = [(variant, collections, 0), (variant, 2 * collections, 0)]
            small, large = count(plan, env, work, sink, {"series": series, "workers": workers})
            per_collection = (large["ir"] - small["ir"]) / collections
            rows[kind] = {"per_collection": per_collection, "per_series": per_collection / series}
    finally:
        sink.stop()
    return {"rows": rows, "series": series, "collections": collections}


def section(result: dict[str, Any]) -> str:
    """The report's first table, its method in a line, the verdicts."""
    rows, layouts = result["rows"], result["layouts"]
    lines = [
        f"### Instructions per request (callgrind): GET {ROUTE}, in process over ASGI",
        "",
        "| variant | instructions per request | vs off | added by telemetry |",
        "|---|---:|---:|---:|",
    ]
    for name, row in rows.items():
        note = f" ({row['sampled']} of {row['requests']} sampled)" if "sampled" in row else ""
        if "export" in row:
            path, export = row["path"] / 1000, row["export"] / 1e6
            note = f" (requests {path:,.0f} k + one export {export:,.1f} M per {EXPORT_EVERY:,})"
        added = ""
        if name != "off" and "added" in row:
            low, high = (k / 1000 for k in row["added_range"])
            added = f"**{row['added'] / 1000:+,.0f} k**"
            added += f" ({low:+,.0f} to {high:+,.0f} k)" if layouts > 1 else ""
        ir, ratio = row["ir"] / 1000, row.get("ratio", 1)
        lines.append(f"| {name}{note} | {ir:,.0f} k | {ratio:.3f} | {added} |")
    lines += [
        "",
        f"(Ir(2N) - Ir(N)) / N, N = {result['requests']}; mean over {layouts} memory layout(s), "
        f"ranges from the lowest to the highest; {result['seconds']:.0f} s.",
        "",
    ]
    verdicts: list[tuple[str, str, bool | None]] = [
        (
            f"`{name}` adds {rows[name]['added'] / 1000:+,.0f} k",
            f"≤ {goal // 1000} k",
            rows[name]["added"] <= goal,
        )
        for name, goal in GOALS.items()
        if "added" in rows.get(name, {})
    ]
    floor = rows.get("floor", {}).get("added")
    if floor is not None and "added" in rows.get("pull", {}):
        # Layouts move every variant alike: against the floor of the same run the goal holds.
        times = rows["pull"]["added"] / floor if floor > 0 else None
        verdicts.append(
            (
                f"`pull` adds {times:.1f} times what the floor adds"
                if times is not None
                else f"the floor adds {floor / 1000:+,.0f} k, below the layouts' noise",
                f"≤ {FLOOR_GOAL:g} times",
                None if times is None else times <= FLOOR_GOAL,
            )
        )
    outcome = {True: "met", False: "NOT met", None: "not measurable in this run"}
    lines += [f"- {what}: goal {goal}, {outcome[met]}." for what, goal, met in verdicts]
    if "collections" in result:
        c = result["collections"]
        lines += [
            "",
            f"| {c['series']:,} HTTP label sets, C = {c['collections']} "
            "| instructions per collection, (Ir(2C) - Ir(C)) / C | per series |",
            "|---|---:|---:|",
        ]
        for kind, row in c["rows"].items():
            per_collection, per_series = row["per_collection"] / 1e6, row["per_series"] / 1000
            lines.append(f"| {kind} | {per_collection:,.1f} M | {per_series:,.1f} k |")
    return "\n".join(lines)


if __name__ == "__main__":  # the children's side: bench.run drives this module
    if sys.argv[1:] == ["--prepare"]:
        print(prepare())
    elif sys.argv[1:] == ["--zygote"]:
        zygote()
    else:
        raise SystemExit("usage: python -m bench.run --phases instructions")
