"""Which process this is, as the `instance` of its pushed series: stable across restarts, one
per worker process, distinct across replicas.

In push mode the collector turns `service.instance.id` into the `instance` label. A random id
per start made every restart a new set of series (churn, old ones lingering until they
expire); here the id is `<base>/<slot>`:
- base: `service.instance.id` from OTEL_RESOURCE_ATTRIBUTES when the operator sets one (a
  pod's name, say), else the host name (a container's is its id, kept across restarts);
- slot: the lowest worker slot free on this host for this service, held by an flock for the
  process's life. Worker processes of one server get 0..N-1; a worker that dies frees its
  slot and its replacement takes it, continuing the same series (a counter reset, which
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

log = logging.getLogger(__name__)
MAX_SLOTS = 1024  # far above any worker count; past it the process id stands in
# The slot this process holds, per directory, with its lock (open until the process exits);
# keyed by pid too, since a forked child holds no lock of its own.
_claimed: dict[tuple[int, Path], tuple[str, IO[bytes] | None]] = {}


def instance_id(service_name: str, slots_dir: Path | None = None) -> str:
    """`<base>/<slot>` for this process (see the module's docstring)."""
    configured = OTELResourceDetector().detect().attributes.get("service.instance.id")
    base = str(configured) if configured else socket.gethostname()
    return f"{base}/{_claim_slot(slots_dir or _default_slots_dir(service_name))}"


def _default_slots_dir(service_name: str) -> Path:
    # Per user and service, so two services on one host never share slots.
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in service_name)
    return Path(tempfile.gettempdir()) / f"testboost-{os.getuid()}" / f"{safe}-slots"


def _claim_slot(directory: Path) -> str:
    """The lowest free slot number in `directory`, locked until this process exits (the same
    slot on every call); the process id (prefixed "pid") when the directory cannot be used."""
    key = (os.getpid(), directory)
    if key not in _claimed:
        _claimed[key] = _lock_free_slot(directory)
    return _claimed[key][0]


def _lock_free_slot(directory: Path) -> tuple[str, IO[bytes] | None]:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for slot in range(MAX_SLOTS):
            handle = open(directory / str(slot), "ab")  # noqa: SIM115 - held for the process's life
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return str(slot), handle
    except OSError as exc:
        log.warning("worker slots unavailable in %s (%s): instance id uses the pid", directory, exc)
    return f"pid{os.getpid()}", None
