"""The directory pull-mode workers share (telemetry/multiprocess.py): who may use it, how its
files are named, and the lock that keeps readers from seeing a fold half done.

- The directory belongs to the server: owned by its user, written by nobody else (no group or
  other write bit), writable by it. Anything else is refused at start with one line: a file a
  neighbour drops there is read by every scrape.
- One server per directory: the first worker records its server (its parent process) in
  `server`; a worker of another server that is still running is refused. Without that, two
  servers add each other's counts, and one's restart clears the other's files.
- Files are named by a worker identity that is never reused: the PID and the process' start
  time (`/proc/<pid>/stat`), so a new process that gets a dead worker's PID has a file of its
  own and the dead worker's counts stay.

Identities are a PID namespace's: two containers given one volume each see the other's
processes as gone, so "one server per directory" holds within a host's (or a pod's) PID
namespace, not across containers. Give each container a directory of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

SERVER_FILE = "server"
LOCK_FILE = ".lock"
# Linux gives every process a start time; elsewhere a PID alone, checked with a signal.
_PROC = Path("/proc/self/stat").exists()


class MetricsDirError(RuntimeError):
    """The directory cannot be used; the message is the one line to show."""


def check(directory: Path, name: str = "") -> None:
    """Make the directory (mode 0700) when missing; refuse one the server does not own alone.
    `name`: what the messages call it (TESTBOOST_METRICS_DIR=<directory> by default)."""
    name = name or f"TESTBOOST_METRICS_DIR={directory}"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.lstat()
    except OSError as exc:
        raise MetricsDirError(f"{name}: cannot create it ({exc.strerror})") from None
    if not stat.S_ISDIR(info.st_mode):
        raise MetricsDirError(f"{name}: not a directory (a symlink or a file)")
    if info.st_uid != os.geteuid():
        raise MetricsDirError(
            f"{name}: owned by uid {info.st_uid}, not by this server's user ({os.geteuid()}); "
            "give it a directory of its own"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise MetricsDirError(
            f"{name}: others can write to it (mode {stat.S_IMODE(info.st_mode):o}); "
            "every file there is read by each scrape: chmod go-w it"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise MetricsDirError(f"{name}: not writable by this server's user")


def identity(pid: int) -> str | None:
    """`<pid>-<start time>` of a running process, None when there is none with that PID."""
    if not _PROC:
        return f"{pid}-0" if _signalable(pid) else None
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (start time, clock ticks after boot); the command name (field 2) may hold spaces
    # and parentheses, so count from the last ')'.
    return f"{pid}-{text.rsplit(')', 1)[1].split()[19]}"


def alive(worker: str) -> bool:
    """Is the process `<pid>-<start>` still the one running under that PID?"""
    pid, _, _start = worker.partition("-")
    return pid.isdigit() and identity(int(pid)) == worker


def claim(directory: Path, server: str) -> None:
    """Record `server` as the directory's user, or refuse when another running one is."""
    with locked(directory, exclusive=True):
        marker = directory / SERVER_FILE
        try:
            recorded = marker.read_text().strip()
        except FileNotFoundError:
            recorded = ""
        if recorded and recorded != server and alive(recorded):
            raise MetricsDirError(
                f"TESTBOOST_METRICS_DIR={directory} is used by another server (pid "
                f"{recorded.partition('-')[0]}); give each server a directory of its own"
            )
        if recorded != server:
            scratch = directory / f".{SERVER_FILE}.{os.getpid()}"
            scratch.write_text(server + "\n")
            os.replace(scratch, marker)


@contextlib.contextmanager
def locked(directory: Path, *, exclusive: bool) -> Iterator[None]:
    """Shared: reading the workers' files; exclusive: changing which files there are."""
    with open(directory / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _signalable(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
