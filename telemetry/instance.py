"""Which process this is, as the `instance` of its pushed series: stable across restarts, one
per worker process, distinct across replicas.

In push mode the collector turns `service.instance.id` into the `instance` label. A random id
per start made every restart a new set of series (churn, old ones lingering until they
expire); here the id is `<base>/<slot>`:
- base: `service.instance.id` from OTEL_RESOURCE_ATTRIBUTES when the operator sets one (a
  pod's name, say); else `testboost serve` sets `<host name>:<port>` there for its workers
  (`serve_base`: a container's host name is its id, kept across restarts; the port tells two
  servers of one host apart); else the host name;
- slot: the lowest worker slot free for this service and base on this host, held by an flock
  for the process's life. Worker processes of one server get 0..N-1; a worker that dies frees
  its slot and its replacement takes it, continuing the same series (a counter reset, which
  rate() and increase() handle as after any restart).
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import IO

from opentelemetry.sdk.resources import OTELResourceDetector

from telemetry import metrics_dir

log = logging.getLogger(__name__)
MAX_SLOTS = 1024  # far above any worker count; past it the process id stands in
# The slot this process holds, per directory, with its lock (open until the process exits);
# keyed by pid too, since a forked child holds no lock of its own.
_claimed: dict[tuple[int, Path], tuple[str, IO[bytes] | None]] = {}


def instance_id(service_name: str, slots_dir: Path | None = None) -> str:
    """`<base>/<slot>` for this process (see the module's docstring)."""
    base = _configured_base() or socket.gethostname()
    return f"{base}/{_claim_slot(slots_dir or _default_slots_dir(service_name, base))}"


def serve_base(port: int) -> None:
    """For `testboost serve` before it starts its workers: `<host name>:<port>` as their
    base, through OTEL_RESOURCE_ATTRIBUTES (which they inherit), unless one is set there."""
    if _configured_base():
        return
    attributes = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    mine = f"service.instance.id={socket.gethostname()}:{port}"
    os.environ["OTEL_RESOURCE_ATTRIBUTES"] = f"{attributes},{mine}" if attributes else mine


def _configured_base() -> str | None:
    configured = OTELResourceDetector().detect().attributes.get("service.instance.id")
    return str(configured) if configured else None


def _default_slots_dir(service_name: str, base: str) -> Path:
    # Per user, service and base, so two servers of one host never share slots.
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{service_name}-{base}")
    return Path(tempfile.gettempdir()) / f"testboost-{os.getuid()}-{safe}-slots"


def _claim_slot(directory: Path) -> str:
    """The lowest free slot number in `directory`, locked until this process exits (the same
    slot on every call); the process id (prefixed "pid") when the directory cannot be used."""
    key = (os.getpid(), directory)
    if key not in _claimed:
        _claimed[key] = _lock_free_slot(directory)
    return _claimed[key][0]


def _lock_free_slot(directory: Path) -> tuple[str, IO[bytes] | None]:
    try:
        # In a shared temp dir: only a directory of this user's alone, and no symlinks in it,
        # or a neighbour could hold our slots or point them elsewhere.
        metrics_dir.check(directory, f"worker slots {directory}")
        for slot in range(MAX_SLOTS):
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
            handle = os.fdopen(os.open(directory / str(slot), flags, 0o600), "ab")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return str(slot), handle
    except (OSError, metrics_dir.MetricsDirError) as exc:
        log.warning("worker slots unavailable (%s): instance id uses the pid", exc)
    return f"pid{os.getpid()}", None
