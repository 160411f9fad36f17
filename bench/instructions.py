"""Instructions per request (callgrind): what telemetry costs the API, counted, not timed.

Wall-clock ratios on a shared 2-core machine move by 5-15 % between rounds; the number of
instructions a request executes does not. Each variant that uses our telemetry (off, pull,
pull-traces, push: the OTEL_* of bench/variants.py) is built in a child process as
`testboost serve` builds it (create_app, its logging) and driven straight through its ASGI
interface as uvicorn would call it for wrk's requests (the same scope, a Host header, the
access log line) but without sockets or HTTP parsing: GET /api/v2/sessions/{id} on SQLite,
one finished session. That is the app's own request path: middleware, routing, the sync
endpoint on the threadpool, the database read, serialisation, telemetry.

Counting: the children run under `valgrind --tool=callgrind`, which counts every instruction
of every thread of the process, the span processor's and the push reader's exports included.
Each child switches counting on at the end of its start-up (a Valgrind client request) and is
counted to its exit. Start-up, shutdown and first-request costs cancel in the difference of
two children with N and 2N requests: (Ir(2N) - Ir(N)) / N. The children are forked from one
"zygote" under valgrind that imported the app once (imports cost ~5 s a child under valgrind).

Deterministic: PYTHONHASHSEED fixed, an environment of its own; each request draws its trace
ids from a generator of its own (behind `random.getrandbits`), chosen so that exactly every
tenth request is sampled; no timers: span batches leave when full or at shutdown, the workflow
lease keeper sleeps, and push exports are counted apart (a child that adds E exports after its
N requests gives one export's cost, charged at one export per 1,000 requests: the throughput
phase exports every 1 s at ~1,000 req/s, while under valgrind, ~50x slower, a 1 s timer would
export 50x more often per request). Two runs agree within ~0.15 %.

Memory layout is the one input left: the same code counts up to ~1.5 % differently when its
objects sit elsewhere (CPython's attribute cache and dict probes depend on addresses), so each
figure is a mean over `--layouts` zygotes whose environments differ in size only.

    python -m bench.instructions                    # off pull pull-traces push: ~2 minutes
    python -m bench.instructions --layouts 10       # a tighter mean, ~7 minutes
    python -m bench.instructions --requests 20 --layouts 1 --variants off pull
"""

from __future__ import annotations

import argparse
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from bench.variants import ROOT, VARIANTS, Process, get, make_sink, temp_dir

ROUTE = "/api/v2/sessions/{session_id}"
REQUESTS = 50
# A process's memory layout moves its instruction count by up to ~1 % (Python's attribute
# cache and dict probes depend on object addresses): every figure is a mean over layouts,
# made by padding the environment by LAYOUT_STEP more characters for each.
LAYOUTS = 3
LAYOUT_VARIABLE = "TESTBOOST_BENCH_LAYOUT"
LAYOUT_STEP = 40
EXPORTS = 5
# Push: one export per this many requests, the throughput phase's rate (every 1 s at about
# 1,000 requests a second; production exports every 15 s).
EXPORT_EVERY = 1000
INSTRUCTION_VARIANTS = ("off", "floor", "pull", "pull-traces", "push", "pfi", "otel-stock")
# What telemetry may add per request (docs/benchmarks.md): the verdict rows.
GOALS = {"pull": 50_000, "pull-traces": 250_000}
FLOOR_GOAL = 2.0  # pull against the floor, counted in the same run
# A scrape's and a push export's cost per series: S HTTP label sets (a counter and a
# histogram each), C and 2C collections, as (variant, workers).
COLLECTION_SERIES = 1000
COLLECTIONS = 3
COLLECTION_KINDS = {"scrape": ("pull", 1), "scrape, 4 workers": ("pull", 4), "export": ("push", 1)}
# Imported by the zygote before it forks the children.
PRELOAD = (
    "app.main",
    "app.core.config",
    "app.core.logs",
    "alembic.command",
    "alembic.config",
    "alembic.runtime.migration",
    "sqlalchemy.dialects.sqlite",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "uvicorn.protocols.utils",
    "uvloop",
    "bench.serve",
    "opentelemetry.exporter.prometheus",
    "opentelemetry.instrumentation.fastapi",
    "prometheus_fastapi_instrumentator",
)
FIXED_ENV = {
    "PYTHONHASHSEED": "0",
    "TESTBOOST_LLM_SIM_LATENCY": "0.01",
    # No timers: a span batch leaves when it is full or at shutdown, push exports when the
    # driver says so, the workflow lease keeper sleeps through the run.
    "OTEL_BSP_SCHEDULE_DELAY": "86400000",
    "OTEL_METRIC_EXPORT_INTERVAL": "86400000",
    "TESTBOOST_WORKFLOW_LEASE_TTL": "3600",
}


# --- the child: one app, N requests over ASGI ---------------------------------------------


class Driver:
    """Calls the app the way uvicorn's httptools protocol does for wrk's requests: the same
    scope keys, a Host header only, the access log line at response start."""

    def __init__(self, app: Any) -> None:
        from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

        self.app = app
        self.state: dict[str, Any] = {}
        self.access_logger = logging.getLogger("uvicorn.access")
        self.access_log = self.access_logger.hasHandlers()
        self._client_addr = get_client_addr
        self._path = get_path_with_query_string

    async def startup(self) -> None:
        self._lifespan_messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        self._lifespan = asyncio.ensure_future(
            self.app(scope, self._lifespan_messages.get, self._lifespan_send)
        )
        await self._lifespan_event("startup")

    async def shutdown(self) -> None:
        await self._lifespan_event("shutdown")

    async def _lifespan_event(self, event: str) -> None:
        self._answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._lifespan_messages.put({"type": f"lifespan.{event}"})
        await asyncio.wait([self._answer, self._lifespan], return_when=asyncio.FIRST_COMPLETED)
        if not self._answer.done():
            self._lifespan.result()  # raises what the app raised
            raise RuntimeError(f"the app's lifespan ended before {event} completed")
        self._answer.result()

    async def _lifespan_send(self, message: dict[str, Any]) -> None:
        if self._answer.done():
            return
        if message["type"].endswith(".failed"):
            self._answer.set_exception(RuntimeError(message.get("message", message["type"])))
        elif message["type"].endswith(".complete"):
            self._answer.set_result(None)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        headers = [(b"host", b"127.0.0.1:8000")]
        if body:
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
        scope: Any = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "root_path": "",
            "headers": headers,
            "state": self.state.copy(),
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
        }
        finished = asyncio.Event()
        sent = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await finished.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if self.access_log:
                    self.access_logger.info(
                        '%s - "%s %s HTTP/%s" %d',
                        self._client_addr(scope),
                        method,
                        self._path(scope),
                        "1.1",
                        status,
                    )
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    finished.set()

        await self.app(scope, receive, send)
        return status, b"".join(chunks)


# valgrind.h's client request on amd64, as a function `long request(unsigned long args[6])`:
# the magic preamble (four rotations of rdi that add up to 128 bits, then xchg rbx,rbx) with
# rax = args and rdx = the default answer; outside Valgrind it does nothing and returns 0.
_CLIENT_REQUEST = bytes.fromhex(
    "".join(
        (
            "4889f8",  # mov rax, rdi
            "31d2",  # xor edx, edx
            "48c1c703",  # rol rdi, 3
            "48c1c70d",  # rol rdi, 13
            "48c1c73d",  # rol rdi, 61
            "48c1c733",  # rol rdi, 51
            "4887db",  # xchg rbx, rbx
            "4889d0",  # mov rax, rdx
            "c3",  # ret
        )
    )
)
# callgrind.h: VG_USERREQ_TOOL_BASE('C', 'T') + 4
CALLGRIND_START_INSTRUMENTATION = (ord("C") << 24 | ord("T") << 16) + 4


def can_start_instrumentation() -> bool:
    return sys.platform == "linux" and platform.machine() in ("x86_64", "amd64")


def client_request(code: int) -> int:
    """Ask Valgrind (callgrind) to do `code`, from Python, without a compiler."""
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(_CLIENT_REQUEST)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    function = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_void_p)(address)
    args = (ctypes.c_ulong * 6)(code, 0, 0, 0, 0, 0)
    answer = int(function(ctypes.addressof(args)))
    del function
    return answer


def _build(variant: str = "off") -> tuple[Any, Driver]:
    """The app as bench/serve.py serves `variant` (its OTEL_* are in the environment)."""
    from app.core.config import load_settings
    from app.core.logs import configure_logging
    from bench.serve import build

    configure_logging(load_settings().log_level)
    app = build(variant)
    return app, Driver(app)


def _run(coro: Any) -> Any:
    try:  # uvicorn's loop="auto" picks uvloop when it is installed
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def prepare() -> str:
    """Migrate the database and create one session whose workflow has finished."""
    _app, driver = _build()

    async def go() -> str:
        await driver.startup()
        status, body = await driver.request(
            "POST",
            "/api/v2/sessions",
            json.dumps({"session_type": "test_generation", "project_path": "/bench"}).encode(),
        )
        assert status == 201, (status, body)
        session_id = str(json.loads(body)["id"])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status, body = await driver.request("GET", ROUTE.format(session_id=session_id))
            if status == 200 and json.loads(body)["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("benchmark session did not finish its workflow")
        await driver.shutdown()
        return session_id

    result: str = _run(go())
    return result


def sampling_seeds(requests: int) -> list[int]:
    """A seed per request such that exactly every tenth request is sampled at 10 %: the
    SDK's trace ids come from `random.getrandbits` (RandomIdGenerator), and TraceIdRatioBased
    samples a trace when its id's low 64 bits are below a bound. Left to chance, 50 requests
    would have 5 ± 2 sampled, and the traced variant's figure would move with that draw."""
    ratio = float(VARIANTS["pull-traces"].env["OTEL_TRACES_SAMPLER_ARG"])
    sampler = TraceIdRatioBased(ratio)
    every = round(1 / ratio)
    pools: dict[bool, list[int]] = {True: [], False: []}
    wanted = {True: -(-requests // every), False: requests}
    seed = 0
    while any(len(pools[k]) < wanted[k] for k in pools):
        trace_id = random.Random(seed).getrandbits(128)
        pools[trace_id & sampler.TRACE_ID_LIMIT < sampler.bound].append(seed)
        seed += 1
    sampled, unsampled = iter(pools[True]), iter(pools[False])
    return [next(sampled) if i % every == 0 else next(unsampled) for i in range(requests)]


def drive(variant: str, requests: int, session_id: str, exports: int) -> dict[str, Any]:
    """Start the app, switch callgrind's counting on, `requests` GETs, then `exports` push
    exports (push only), stop the app (the span processor's last batch leaves here)."""
    random.seed(0)  # start-up's own root spans (SQL at the root) sampled alike in every child
    app, driver = _build(variant)
    tel = app.state.telemetry
    path = ROUTE.format(session_id=session_id)
    # One generator per request, made now: putting one in place costs a module attribute
    # store (reseeding would cost ~31 k instructions a request); the request's ids are then
    # drawn by the same C method as ever.
    draws = [random.Random(seed).getrandbits for seed in sampling_seeds(requests)]
    after = random.Random(1).getrandbits  # shutdown's root spans alike, whatever came last

    async def go() -> dict[str, Any]:
        await driver.startup()
        if can_start_instrumentation():
            client_request(CALLGRIND_START_INSTRUMENTATION)
        statuses: dict[int, int] = {}
        for draw in draws:
            random.getrandbits = draw  # the trace id, hence the sampling, of this request
            status, _body = await driver.request("GET", path)
            statuses[status] = statuses.get(status, 0) + 1
        if exports and not (tel and tel.config.push):
            raise RuntimeError("exports: push only")
        for _ in range(exports):
            tel.meter_provider.force_flush()
        random.getrandbits = after
        await driver.shutdown()
        return {"statuses": statuses}

    result: dict[str, Any] = _run(go())
    return result


def collect(series: int, collections: int, workers: int) -> dict[str, Any]:
    """Telemetry as the app sets it up (the OTEL_* of the environment) holding `series` HTTP
    label sets, then `collections` scrapes (pull: what GET /metrics renders, merged with
    `workers` - 1 other workers' publications of the same series) or exports (push). The
    first collection, which builds the renderer's per-series cache, is not counted."""
    import telemetry
    from telemetry import metrics_dir, multiprocess

    others: list[subprocess.Popen[bytes]] = []
    if workers > 1:  # as `testboost serve --workers` runs them: a private shared directory
        os.environ["TESTBOOST_METRICS_DIR"] = tempfile.mkdtemp(prefix="bench-workers-")
    # Settled series, as nearly every scrape sees them (the new-series hold has passed).
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
    if tel.config.push:
        assert tel.meter_provider is not None
        once: Any = tel.meter_provider.force_flush
    else:
        assert tel.pull_reader is not None
        once = tel.pull_reader.render
    size = len(once()) if not tel.config.push else 0
    if can_start_instrumentation():
        client_request(CALLGRIND_START_INSTRUMENTATION)
    for _ in range(collections):
        once()
    for other in others:
        other.kill()
    if tel.workers is not None:
        shutil.rmtree(tel.workers.directory)  # after the count: ~1.5 MB a worker
    return {"statuses": {"200": 0}, "bytes": size}


# --- the parent: children under callgrind, figures ------------------------------------------


@dataclass
class Count:
    variant: str
    requests: int
    exports: int
    ir: int
    seconds: float
    spans: int = 0
    roots: int = 0
    metric_exports: int = 0


def have_valgrind() -> bool:
    return shutil.which("valgrind") is not None


def total_ir(callgrind_out: Path) -> int:
    for line in callgrind_out.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {callgrind_out}")


def child_env(variant: str, endpoint: str | None) -> dict[str, str]:
    """What a child sets on top of the zygote's environment (which has no OTEL_* at all)."""
    env = {k: v for k, v in FIXED_ENV.items() if k.startswith("OTEL_")}
    env.update(VARIANTS[variant].env)
    env.update({k: v for k, v in FIXED_ENV.items() if k.startswith("OTEL_")})
    if endpoint is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    return env


def base_env(db_url: str) -> dict[str, str]:
    """The zygote's whole environment, nothing inherited: the caller's variables would change
    what the app does (a log level, say) and, by their mere size, the memory layout."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    env.update({k: v for k, v in FIXED_ENV.items() if not k.startswith("OTEL_")})
    env["TESTBOOST_DATABASE_URL"] = db_url
    return env


def zygote() -> None:
    """Under callgrind with counting off: import what every child needs once (about 5 s per
    child under valgrind otherwise), then fork a child per job read on stdin, one JSON line
    each; report each child's end on stdout (job id, pid, exit code)."""
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
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                job = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _child(job)
                running[pid] = job["id"]
        while running:
            pid, status = os.waitpid(-1, 0 if not reading else os.WNOHANG)
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
        if "collections" in job:
            outcome = collect(job["series"], job["collections"], job["workers"])
        else:
            outcome = drive(job["variant"], job["requests"], job["session"], job["exports"])
        Path(job["result"]).write_text(json.dumps(outcome))
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        # The app has stopped (its exporters flushed): skip the interpreter's teardown, which
        # would only add the same instructions to every child, slowly.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Zygote:
    """The parent's side: one valgrind process, children forked from it on demand."""

    def __init__(self, env: dict[str, str], work: Path) -> None:
        self.work = work
        self.log = work / "zygote.log"
        atstart = "no" if can_start_instrumentation() else "yes"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    "valgrind",
                    "--tool=callgrind",
                    f"--instr-atstart={atstart}",
                    f"--callgrind-out-file={work}/callgrind.%p",
                    sys.executable,
                    "-m",
                    "bench.instructions",
                    "--zygote",
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        self.pid = int(self._message()["ready"])
        (work / f"callgrind.{self.pid}").unlink(missing_ok=True)

    def _message(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the callgrind zygote ended:\n{tail}")
        message: dict[str, Any] = json.loads(line)
        return message

    def start(self, job: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(job).encode() + b"\n")
        self.process.stdin.flush()

    def finished(self) -> tuple[str, int, int]:
        """(job id, pid, exit code) of the next child to end."""
        message = self._message()
        return message["id"], message["pid"], message["code"]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        (self.work / f"callgrind.{self.pid}").unlink(missing_ok=True)


@dataclass
class Job:
    variant: str
    requests: int
    exports: int
    sink: Process | None = None
    endpoint: str | None = None
    started: float = 0.0


def count_all(
    plan: list[tuple[str, int, int]],
    session_id: str,
    env: dict[str, str],
    work: Path,
    jobs: int,
    collect: dict[str, int] | None = None,
) -> list[Count]:
    """Each (variant, requests, exports) of `plan` counted in its own child, `jobs` at a
    time; the push and traces children each get an OTLP receiver of their own (outside
    valgrind, so its counts are per child). With `collect` (series, workers), the children
    make `requests` collections instead (`collect()`)."""
    zygote = Zygote(env, work)
    counts: dict[int, Count] = {}
    running: dict[str, tuple[int, Job]] = {}
    waiting = list(enumerate(plan))
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                index, (variant, requests, exports) = waiting.pop(0)
                job = Job(variant, requests, exports, started=time.monotonic())
                if VARIANTS[variant].needs_sink:
                    job.sink, job.endpoint = make_sink(work, None)
                tag = f"{index}-{variant}-{requests}"
                running[tag] = (index, job)
                zygote.start(
                    {
                        "id": tag,
                        "variant": variant,
                        "requests": requests,
                        "exports": exports,
                        "session": session_id,
                        "env": child_env(variant, job.endpoint),
                        "log": str(work / f"{tag}.log"),
                        "result": str(work / f"{tag}.json"),
                        **({"collections": requests, **collect} if collect else {}),
                    }
                )
            tag, pid, code = zygote.finished()
            index, job = running.pop(tag)
            try:
                stats = json.loads(get(f"{job.endpoint}/stats")[1]) if job.endpoint else {}
            finally:
                if job.sink is not None:
                    job.sink.stop()
            counts[index] = _count(job, tag, pid, code, stats, work, requests=not collect)
    finally:
        for _, job in running.values():
            if job.sink is not None:
                job.sink.stop()
        zygote.close()
    return [counts[index] for index in range(len(plan))]


def _count(
    job: Job, tag: str, pid: int, code: int, stats: dict[str, int], work: Path, requests: bool
) -> Count:
    log, result, out = work / f"{tag}.log", work / f"{tag}.json", work / f"callgrind.{pid}"
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{job.variant} x{job.requests} under callgrind failed:\n{tail}")
    statuses = json.loads(result.read_text())["statuses"]
    if requests and statuses != {"200": job.requests}:
        raise RuntimeError(f"{job.variant}: not every request answered 200: {statuses}")
    ir = total_ir(out)
    for path in (log, result, out):
        path.unlink()
    return Count(
        job.variant,
        job.requests,
        job.exports,
        ir,
        time.monotonic() - job.started,
        spans=stats.get("/v1/traces:spans", 0),
        roots=stats.get("/v1/traces:roots", 0),
        metric_exports=stats.get("/v1/metrics", 0),
    )


def run(
    variants: list[str],
    requests: int = REQUESTS,
    layouts: int = LAYOUTS,
    exports: int = EXPORTS,
    jobs: int | None = None,
    work: Path | None = None,
) -> dict[str, Any]:
    """Every variant counted in `layouts` memory layouts (one zygote each): two children per
    layout, N and 2N requests; push also one child with N requests then `exports` exports
    (first layout only: it is charged 1/1000 per request). `jobs` children at a time; the
    counts do not depend on what else runs. JSON-ready figures, per variant."""
    # The database's path is in the environment: the same length from `make bench` or not.
    work = work or temp_dir("testboost-bench-") / "instructions"
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    jobs = jobs or min(2, os.cpu_count() or 1)
    db_url = f"sqlite:///{work / 'instructions.db'}"
    prepared = subprocess.run(
        [sys.executable, "-m", "bench.instructions", "--prepare"],
        cwd=ROOT,
        env={**base_env(db_url), **child_env("off", None)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if prepared.returncode != 0:
        raise RuntimeError(f"preparing the database failed:\n{prepared.stderr[-3000:]}")
    session_id = prepared.stdout.strip().splitlines()[-1]
    counts: dict[tuple[int, str, int, int], Count] = {}
    for layout in range(layouts):
        plan = [(v, n, 0) for v in variants for n in (requests, 2 * requests)]
        if layout == 0 and "push" in variants and exports:
            plan.append(("push", requests, exports))
        plan.sort(key=lambda job: -(job[1] + job[2]))  # longest first: the last end together
        env = {**base_env(db_url), LAYOUT_VARIABLE: "x" * (LAYOUT_STEP * layout)}
        measured = count_all(plan, session_id, env, work, jobs)
        counts.update({(layout, *job): count for job, count in zip(plan, measured, strict=True)})
    rows: dict[str, Any] = {}
    for name in variants:
        pairs = [
            (counts[(k, name, requests, 0)], counts[(k, name, 2 * requests, 0)])
            for k in range(layouts)
        ]
        path = [(large.ir - small.ir) / requests for small, large in pairs]
        row: dict[str, Any] = {"requests": requests, "path_per_layout": path}
        per_request = path
        if name == "push" and exports:
            with_exports = counts[(0, "push", requests, exports)]
            row["export"] = (with_exports.ir - pairs[0][0].ir) / exports
            row["export_every"] = EXPORT_EVERY
            per_request = [p + row["export"] / EXPORT_EVERY for p in path]
        if name == "pull-traces":
            small, large = pairs[0]
            row["sampled"] = large.roots - small.roots
            row["spans"] = large.spans - small.spans
        row["per_layout"] = per_request
        row["ir"] = statistics.mean(per_request)
        row["spread"] = (max(per_request) - min(per_request)) / row["ir"]
        row["counts"] = [
            {"layout": key[0], **asdict(count)}
            for key, count in sorted(counts.items())
            if key[1] == name
        ]
        rows[name] = row
    if "off" in rows:
        off = rows["off"]["per_layout"]
        for row in rows.values():
            ratios = [v / o for v, o in zip(row["per_layout"], off, strict=True)]
            added = [v - o for v, o in zip(row["per_layout"], off, strict=True)]
            row["ratio"] = row["ir"] / rows["off"]["ir"]
            row["ratio_range"] = [min(ratios), max(ratios)]
            row["added"] = row["ir"] - rows["off"]["ir"]
            row["added_range"] = [min(added), max(added)]
    return {
        "rows": rows,
        "requests": requests,
        "layouts": layouts,
        "seconds": time.monotonic() - started,
        "children": len(counts),
        "jobs": jobs,
    }


def run_collections(
    series: int = COLLECTION_SERIES,
    collections: int = COLLECTIONS,
    jobs: int | None = None,
    work: Path | None = None,
) -> dict[str, Any]:
    """Instructions per series of one scrape (pull, 1 and 4 workers) and one push export:
    (Ir(2C) - Ir(C)) / C / S, one memory layout (a collection is S times a request's work:
    layout moves it by far less than the figure's last digit)."""
    work = work or temp_dir("testboost-bench-") / "collections"
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    env = base_env(f"sqlite:///{work / 'unused.db'}")
    rows: dict[str, Any] = {}
    for kind, (variant, workers) in COLLECTION_KINDS.items():
        plan = [(variant, collections, 0), (variant, 2 * collections, 0)]
        small, large = count_all(
            plan, "", env, work, jobs or 2, collect={"series": series, "workers": workers}
        )
        per_collection = (large.ir - small.ir) / collections
        rows[kind] = {
            "variant": variant,
            "workers": workers,
            "per_collection": per_collection,
            "per_series": per_collection / series,
        }
    return {
        "rows": rows,
        "series": series,
        "collections": collections,
        "seconds": time.monotonic() - started,
    }


def collections_table(result: dict[str, Any]) -> str:
    lines = [
        f"| {result['series']:,} HTTP label sets | instructions per collection | per series |",
        "|---|---:|---:|",
    ]
    for kind, row in result["rows"].items():
        lines.append(
            f"| {kind} | {row['per_collection'] / 1e6:,.1f} M | {row['per_series'] / 1000:,.1f} k |"
        )
    return "\n".join(lines)


def table(result: dict[str, Any]) -> str:
    several = result["layouts"] > 1
    lines = [
        "| variant | instructions per request | vs off | added by telemetry "
        + ("| spread over layouts |" if several else "|"),
        "|---|---:|---:|---:|" + ("---:|" if several else ""),
    ]
    for name, row in result["rows"].items():
        note = ""
        if name == "pull-traces":
            note = f" ({row['sampled']} of {row['requests']} requests sampled)"
        elif "export" in row:
            note = (
                f" (requests {statistics.mean(row['path_per_layout']) / 1000:,.0f} k + one"
                f" export {row['export'] / 1000:,.0f} k per {row['export_every']:,})"
            )
        ratio = added = ""
        if "ratio" in row and name != "off":
            ratio = f"**{row['ratio']:.3f}**"
            added = f"**{row['added'] / 1000:+,.0f} k**"
            if several:
                low, high = row["ratio_range"]
                ratio += f" ({low:.3f} to {high:.3f})"
                low, high = row["added_range"]
                added += f" ({low / 1000:+,.0f} to {high / 1000:+,.0f} k)"
        elif name == "off":
            ratio = "1.000"
        line = f"| {name}{note} | {row['ir'] / 1000:,.0f} k | {ratio} | {added} |"
        lines.append(line + (f" {row['spread'] * 100:.1f} % |" if several else ""))
    return "\n".join(lines)


def verdict(result: dict[str, Any]) -> list[str]:
    """One line per goal of GOALS whose variant was counted, and ours against the floor."""
    rows, lines = result["rows"], []
    for name, goal in GOALS.items():
        if name in rows and "added" in rows[name]:
            added = rows[name]["added"]
            met = "met" if added <= goal else "NOT met"
            lines.append(
                f"- `{name}` adds {added / 1000:+,.0f} k per request: "
                f"goal ≤ {goal // 1000} k, {met}."
            )
    if "floor" in rows and "pull" in rows and rows["floor"].get("added", 0) > 0:
        # Layouts move every variant's count alike: against the floor of the same run, the
        # goal holds whatever the layouts drawn.
        times = rows["pull"]["added"] / rows["floor"]["added"]
        met = "met" if times <= FLOOR_GOAL else "NOT met"
        lines.append(
            f"- `pull` adds {times:.1f} times what the floor adds: "
            f"goal ≤ {FLOOR_GOAL:g} times, {met}."
        )
    return lines


def section(result: dict[str, Any]) -> str:
    """The report's first table, with its method in a few lines."""
    layouts = result["layouts"]
    where = (
        f"mean over {layouts} memory layouts (ranges: the lowest and highest layout)"
        if layouts > 1
        else "one memory layout"
    )
    lines = [
        f"### Instructions per request (callgrind): GET {ROUTE}, in process over ASGI",
        "",
        table(result),
        "",
        f"(Ir(2N) - Ir(N)) / N with N = {result['requests']}, every thread of the process "
        f"from the end of start-up to exit; {where}. "
        f"{result['children']} children under valgrind, {result['seconds']:.0f} s.",
        "",
        *verdict(result),
    ]
    if "collections" in result:
        collections = result["collections"]
        lines += [
            "",
            f"Instructions per scrape and per push export ((Ir(2C) - Ir(C)) / C, C = "
            f"{collections['collections']}, settled series; {collections['seconds']:.0f} s):",
            "",
            collections_table(collections),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.instructions", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--variants", nargs="+", choices=INSTRUCTION_VARIANTS, default=list(INSTRUCTION_VARIANTS)
    )
    parser.add_argument("--requests", type=int, default=REQUESTS, help="N (children run N, 2N)")
    parser.add_argument(
        "--layouts", type=int, default=LAYOUTS, help="memory layouts (zygotes) to average over"
    )
    parser.add_argument("--exports", type=int, default=EXPORTS, help="push exports measured")
    parser.add_argument("--jobs", type=int, help="children at a time (default: 2)")
    parser.add_argument(
        "--collections", action="store_true", help="also count a scrape's and an export's cost"
    )
    # The child's side.
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--zygote", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare:
        print(prepare())
        return 0
    if args.zygote:
        zygote()
        return 0
    if not have_valgrind():
        print("valgrind not found (Debian package `valgrind`)", file=sys.stderr)
        return 2
    result = run(args.variants, args.requests, args.layouts, args.exports, args.jobs)
    if args.collections:
        result["collections"] = run_collections(jobs=args.jobs)
    print(section(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
