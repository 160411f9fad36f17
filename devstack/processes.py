"""Starting, watching and stopping processes: the stack's, the benchmarks' and the tests'.

Each component runs in a session of its own (its pid is its process group id), so stopping it
stops its children too (uvicorn workers). A process is identified by its pid *and* its start
time from /proc, so a recorded pid that the system reused for something else is never killed.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.configs import REPO, StackError

TOOLS_BIN = REPO / ".tools" / "bin"
STOP_GRACE_S = 10.0


def find_tool(*names: str) -> str:
    """The first of `names` found in the project's .tools/bin, then on PATH."""
    for name in names:
        local = TOOLS_BIN / name
        if local.is_file() and os.access(local, os.X_OK):
            return str(local)
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise StackError(
        f"{names[0]} not found in {TOOLS_BIN} nor on PATH: run `make tools` "
        "(scripts/install-tools.sh) to install it into .tools/"
    )


def prometheus_web_assets(binary: str) -> Path | None:
    """The web UI a Debian prometheus unpacked into .tools/ serves (`--web.local-assets`, by
    default a fixed system path): its classic pages, under /classic/. Debian's 3.x build ships
    none (its UI needs a JavaScript build Debian does not do); an upstream build embeds its own."""
    assets = _web_dir(binary)
    return assets if (assets / "templates" / "_base.html").is_file() else None


def prometheus_pages(binary: str) -> str:
    """Where this build's targets and alerts pages are, for the stack's printed hints."""
    if prometheus_web_assets(binary) is not None:
        return "targets /classic/targets, alerts /classic/alerts"
    if (_web_dir(binary) / "no-ui").is_dir():
        return "no web UI in Debian's build: targets /api/v1/targets, alerts /api/v1/alerts"
    return "targets /targets, alerts /alerts"


def _web_dir(binary: str) -> Path:
    """Where Debian's package, unpacked into .tools/, puts the web assets of `binary`."""
    return Path(binary).resolve().parents[1] / "share" / "prometheus" / "web"


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands out to `:0` listeners (ip_local_port_range)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


_handed_out: set[int] = set()


def free_port(offsets: Sequence[int] = (0,)) -> int:
    """A loopback port nothing listens on, chosen below the kernel's ephemeral range: a port
    taken with bind(0) and released could be handed to another program's `:0` listener before
    the component binds it, which failed runs now and then. With `offsets`, the ports at those
    offsets from it are free and below that range too (a component's other ports). Never the
    same port twice in a process."""
    floor = _ephemeral_floor()
    low, high = 10000 - min(offsets), floor - max(offsets)
    for _ in range(200):
        port = random.randrange(low, high)
        wanted = [port + offset for offset in offsets]
        if any(p in _handed_out or not is_free(p) for p in wanted):
            continue
        _handed_out.update(wanted)
        return port
    raise StackError(f"no free port found between {low} and {high}")


def is_free(port: int) -> bool:
    """Nothing listens on loopback `port` (one in TIME_WAIT is free: the components, as
    servers do, bind with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may contain spaces)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def start_time(pid: int) -> int | None:
    """Clock ticks since boot at which `pid` started; None if it is gone (or a zombie)."""
    fields = _stat(pid)
    if fields is None or fields[0] == "Z":
        return None
    return int(fields[19])


def group_members(pgid: int, not_before: int) -> list[int]:
    """Live processes of group `pgid` started at or after `not_before` (so ours, not a
    later group that reused the number)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(entry.name)
        if fields and fields[0] != "Z" and int(fields[2]) == pgid and int(fields[19]) >= not_before:
            members.append(int(entry.name))
    return members


@dataclass
class Process:
    """One component's process: started here (`popen` set) or found in a state file."""

    name: str
    pid: int
    started: int | None
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    @classmethod
    def spawn(
        cls, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path = REPO
    ) -> Process:
        """Start `argv` with exactly `env`, its output appended to `log`."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(name, popen.pid, start_time(popen.pid), log, popen)

    def alive(self) -> bool:
        if self.popen is not None and self.popen.poll() is not None:
            return False
        return self.started is not None and start_time(self.pid) == self.started

    def running(self) -> list[int]:
        """Our live processes: the leader and any child left in its group (uvicorn workers)."""
        if self.started is None:
            return []
        return group_members(self.pid, self.started)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = STOP_GRACE_S) -> float:
        """Signal the process group; SIGKILL what outlives `timeout`. Bounded. Returns the
        seconds it took."""
        began = time.monotonic()
        for this_signal, wait_s in ((sig, timeout), (signal.SIGKILL, 5.0)):
            if not self.running():
                break
            try:
                os.killpg(self.pid, this_signal)
            except (ProcessLookupError, PermissionError):
                break
            deadline = time.monotonic() + wait_s
            while self.running() and time.monotonic() < deadline:
                self._poll()
                time.sleep(0.05)
        self._reap()
        return time.monotonic() - began

    def _poll(self) -> None:
        # Our own child stays a zombie (still in the group) until it is waited for.
        if self.popen is not None:
            self.popen.poll()

    def _reap(self) -> None:
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)

    def output(self) -> str:
        """Everything the process wrote so far."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:]) or "(no log)"


def wait_ready(process: Process, url: str, deadline: float) -> None:
    """Poll `url` until it answers 200; fail early, with the log, if the process dies."""
    with httpx.Client(timeout=2.0) as client:
        while True:
            if not process.alive():
                raise StackError(
                    f"{process.name} exited during start-up; last lines of {process.log}:\n"
                    f"{process.log_tail()}"
                )
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise StackError(
                    f"{process.name} not ready at {url} in time; last lines of {process.log}:\n"
                    f"{process.log_tail()}"
                )
            time.sleep(0.1)


def start(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    log: Path,
    ready_url: str,
    timeout: float = 30.0,
    cwd: Path = REPO,
) -> Process:
    """Spawn a process and wait until `ready_url` answers 200; stopped again if it does not."""
    process = Process.spawn(name, argv, env, log, cwd)
    try:
        wait_ready(process, ready_url, time.monotonic() + timeout)
    except BaseException:
        process.stop(signal.SIGKILL)
        raise
    return process
