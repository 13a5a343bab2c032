"""Running and measuring the processes of the benchmarks.

Every benchmark measures other processes (a server under load, a child that runs one
workload) and this module does it one way for all of them:

- the C tools: :func:`build_tool` compiles the load generator (``loadgen.c``) and the
  epoll floor server (``floor/echo_epoll.c``) into ``build/bench/``;
- pinning: :func:`pinned` puts a command under ``taskset``, :func:`client_command`
  also under SCHED_BATCH, :func:`pin_to_cpu` pins the calling process;
- servers: :func:`start_server` starts one and reads its ``ready PORT`` line (a
  server says it with :func:`say_ready`, or why it cannot run with
  :func:`say_unavailable` and ``EXIT_LOOP_MISSING`` / ``EXIT_UNSUPPORTED``);
  :func:`stop_server` / :func:`stop_process` stop it;
- children that print one JSON result: :func:`run_json_child`;
- measuring a process: its CPU seconds (:func:`process_cpu_seconds`), resident
  memory (:func:`rss_bytes`, :func:`settled_rss`), open fds (:func:`open_fd_count`);
- file descriptors: :func:`raise_fd_limit` and :func:`idle_connections_allowed` for
  the idle-connection memory benchmarks.
"""
from __future__ import annotations

import json
import os
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

__all__ = [
    "EXIT_LOOP_MISSING",
    "EXIT_UNSUPPORTED",
    "FLOOR_SOURCE",
    "IDLE_WARMUP",
    "LOADGEN_SOURCE",
    "REPO_ROOT",
    "BuildError",
    "Server",
    "ServerUnavailable",
    "build_tool",
    "child_env",
    "client_command",
    "close_with_reset",
    "cpus_to_pin",
    "describe_exit",
    "free_port",
    "idle_connections_allowed",
    "last_line",
    "log",
    "open_fd_count",
    "pin_to_cpu",
    "pinned",
    "process_cpu_seconds",
    "raise_fd_limit",
    "require_tools",
    "rss_bytes",
    "run_json_child",
    "say_ready",
    "say_unavailable",
    "settled_rss",
    "start_server",
    "stop_process",
    "stop_server",
    "wait_until",
]

#: Directory that holds the ``benchmarks`` package; children run from there.
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Where the C programs are built.
BUILD_DIR = REPO_ROOT / "build" / "bench"
FLOOR_SOURCE = REPO_ROOT / "benchmarks" / "floor" / "echo_epoll.c"
LOADGEN_SOURCE = REPO_ROOT / "benchmarks" / "loadgen.c"
#: Exit status of a child whose loop cannot be imported (it prints {"missing": REASON}).
EXIT_LOOP_MISSING = 3
#: Exit status of a server whose loop lacks what its style needs ({"unsupported": REASON}).
EXIT_UNSUPPORTED = 4
#: Seconds a server may take to say "ready".
READY_TIMEOUT = 30.0
#: Connections opened (and kept) before an idle-memory baseline is taken.
IDLE_WARMUP = 100
#: File descriptors the harness keeps for itself besides the idle connections.
FD_MARGIN = 64


# --------------------------------------------------------------------------- child side
#
# What a measured process does for the harness: pin itself, say it is ready or why it
# cannot run, and make room for many sockets.


def pin_to_cpu(cpu: int | None) -> bool:
    """Pin this process (and the threads it starts) to ``cpu``; False if not possible."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return False
    return True


def say_ready(port: int) -> None:
    """Print the line :func:`start_server` waits for: the server accepts on ``port``."""
    print(f"ready {port}", flush=True)


def say_unavailable(status: str, reason: str) -> None:
    """Print the one JSON line that explains why this process does not run.

    ``status`` is "missing" (then exit with EXIT_LOOP_MISSING) or "unsupported"
    (EXIT_UNSUPPORTED).
    """
    print(json.dumps({status: reason}), flush=True)


def raise_fd_limit() -> int:
    """Raise this process's RLIMIT_NOFILE to its hard limit; return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# --------------------------------------------------------------------------- building, pinning


class BuildError(RuntimeError):
    """A C program of the benchmarks could not be compiled."""


def build_tool(source: Path) -> Path:
    """Compile ``source`` with ``cc -O2`` into build/bench/ unless up to date; its path."""
    target = BUILD_DIR / source.stem
    if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    compiler = shutil.which("cc")
    if compiler is None:
        raise BuildError("no C compiler: 'cc' is not on PATH")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")  # concurrent builds
    done = subprocess.run([compiler, "-O2", "-Wall", "-Wextra", "-o", str(partial), str(source)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BuildError(f"cc failed on {source.name}:\n{done.stderr.strip()}")
    os.replace(partial, target)
    return target


def pinned(command: Sequence[str], cpu: int | str | None) -> list[str]:
    """``command`` under ``taskset -c CPU`` (unchanged when ``cpu`` is None).

    ``cpu`` is a CPU number or a taskset CPU list ("0,1").
    """
    return list(command) if cpu is None else ["taskset", "-c", str(cpu), *command]


def cpus_to_pin(cpus: str) -> str | None:
    """A ``--cpu``/``--cpus`` text for :func:`pinned`: None (not pinned) for 'none' or
    where taskset is not installed."""
    return None if cpus == "none" or shutil.which("taskset") is None else cpus


def client_command(command: Sequence[str], cpu: int | None, batch: bool) -> list[str]:
    """A load generator's argv: pinned, and under SCHED_BATCH when ``batch``.

    SCHED_BATCH keeps the client's wake-ups from preempting the server that shares
    its CPU: the server runs until it blocks, as a server whose clients are on
    other machines does, instead of being interrupted after every response.
    """
    return pinned(["chrt", "--batch", "0", *command] if batch else command, cpu)


def require_tools(cpu: int | None, batch: bool) -> None:
    """Exit with a message when taskset or chrt (util-linux) is needed and missing."""
    for needed, tool, option in ((cpu is not None, "taskset", "--cpu none"),
                                 (batch, "chrt", "--client-policy normal")):
        if needed and shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (util-linux): install it or pass {option}")


# --------------------------------------------------------------------------- children


def child_env() -> dict[str, str]:
    """Environment of a child: ours, with a fixed hash seed for repeatability."""
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = "0"
    return env


def last_line(text: str) -> str:
    """The last non-empty line of ``text`` (an exception's message, usually)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def describe_exit(returncode: int) -> str:
    """'exit status 1' or 'killed by SIGSEGV'."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def log(verbose: bool, message: str) -> None:
    """Progress on stderr, with --verbose only."""
    if verbose:
        print(message, file=sys.stderr, flush=True)


def run_json_child(command: Sequence[str], timeout: float, label: str) -> dict[str, Any]:
    """Run a child that prints its result as a JSON object on its last line; that object.

    A child that fails raises RuntimeError naming ``label``, with the end of its stderr.
    """
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{label}: {describe_exit(done.returncode)}: "
                           f"{done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- servers


class ServerUnavailable(Exception):
    """A server did not start; ``status`` is 'missing', 'unsupported' or 'error'."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class Server:
    """A running server process and the port it listens on."""

    process: subprocess.Popen[bytes]
    port: int
    stderr: Any  # the temporary file that collects its stderr

    @property
    def pid(self) -> int:
        return self.process.pid

    def error_text(self) -> str:
        """The last line the server wrote on stderr."""
        self.stderr.seek(0)
        return last_line(self.stderr.read().decode(errors="replace"))


def _read_first_line(stream: Any, deadline: float) -> tuple[str, bool]:
    """The first line the process writes on ``stream``, and whether it closed the stream.

    Gives up (returning what came) at ``deadline``.
    """
    data = b""
    fd = stream.fileno()
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return data.decode(errors="replace").strip(), False
        chunk = os.read(fd, 4096)
        if not chunk:
            return data.decode(errors="replace").strip(), True
        data += chunk
    return data.decode(errors="replace").partition("\n")[0].strip(), False


def start_server(command: Sequence[str], cpu: int | str | None,
                 timeout: float = READY_TIMEOUT) -> Server:
    """Start a server that prints ``ready PORT``; raise ServerUnavailable if it does not."""
    stderr = tempfile.TemporaryFile()
    process = subprocess.Popen(pinned(command, cpu), cwd=REPO_ROOT, env=child_env(),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
    assert process.stdout is not None
    line, closed = _read_first_line(process.stdout, time.monotonic() + timeout)
    words = line.split()
    if len(words) == 2 and words[0] == "ready" and words[1].isdigit():
        return Server(process, int(words[1]), stderr)
    server = Server(process, 0, stderr)
    if closed or line:  # it said why it does not start and is exiting: get its status
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            pass
    returncode = stop_server(server)
    try:
        reason: dict[str, str] = json.loads(line) if line.startswith("{") else {}
    except json.JSONDecodeError:
        reason = {}
    if returncode == EXIT_LOOP_MISSING and "missing" in reason:
        raise ServerUnavailable("missing", reason["missing"])
    if returncode == EXIT_UNSUPPORTED and "unsupported" in reason:
        raise ServerUnavailable("unsupported", reason["unsupported"])
    why = "not ready" if returncode is None else describe_exit(returncode)
    raise ServerUnavailable("error", f"server {why}: {server.error_text() or line or 'no output'}")


def stop_process(process: subprocess.Popen[Any], sig: int = signal.SIGTERM,
                 grace: float = 3.0, *, group: bool = False) -> int | None:
    """Send ``sig``, then SIGKILL after ``grace`` seconds; the exit status if the
    process had exited by itself, else None.

    ``group``: the process leads its own process group (started with
    ``start_new_session=True``), as a multi-process server does: ``sig`` goes to the
    whole group, as Ctrl-C in a terminal sends it, and whatever is left of the group
    once the leader is gone is killed. A master that is killed after ``grace``
    (gunicorn's, waiting on workers that ignore its SIGQUIT) would otherwise leave
    its workers running."""
    def send(signum: int) -> None:
        if not group:
            process.send_signal(signum)
            return
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass

    exited = process.poll()
    if exited is None:
        send(sig)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
            process.wait()
    if group:
        send(signal.SIGKILL)          # the leader is reaped: only leftovers remain
    return exited


def stop_server(server: Server, sig: int = signal.SIGTERM, grace: float = 3.0) -> int | None:
    """Stop the server; its exit status if it had exited by itself, else None."""
    exited = stop_process(server.process, sig, grace)
    if server.process.stdout is not None:
        server.process.stdout.close()
    return exited


def free_port() -> int:
    """A port on 127.0.0.1 that is free now, for a server that cannot be given port 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --------------------------------------------------------------------------- measuring a process


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by all threads of ``pid``, in seconds."""
    total_ns = 0
    task_dir = Path(f"/proc/{pid}/task")
    for tid in os.listdir(task_dir):
        try:  # a thread may exit between listdir and the read
            total_ns += int((task_dir / tid / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total_ns / 1e9


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def settled_rss(pid: int, timeout: float = 3.0) -> int:
    """The process's RSS once it has stopped changing (4 equal reads 50 ms apart)."""
    deadline = time.monotonic() + timeout
    reads = [rss_bytes(pid)]
    while time.monotonic() < deadline and (len(reads) < 4 or len(set(reads[-4:])) > 1):
        time.sleep(0.05)
        reads.append(rss_bytes(pid))
    return reads[-1]


def open_fd_count(pid: int) -> int:
    """Number of file descriptors ``pid`` holds open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 10 ms; RuntimeError mentioning ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


# --------------------------------------------------------------------------- idle connections


def idle_connections_allowed(wanted: int) -> int:
    """Raise the fd limit; ``wanted``, or the idle connections it leaves room for.

    Room is kept for IDLE_WARMUP connections and FD_MARGIN other descriptors; a
    smaller count is said on stderr.
    """
    limit = raise_fd_limit() - IDLE_WARMUP - FD_MARGIN
    if wanted > limit:
        print(f"RLIMIT_NOFILE allows {limit} idle connections, not {wanted}", file=sys.stderr)
        return max(limit, 0)
    return wanted


def close_with_reset(sockets: Iterable[socket.socket]) -> None:
    """Close every socket with an RST: no TIME_WAIT left behind for the next run."""
    reset = struct.pack("ii", 1, 0)
    for sock in sockets:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, reset)
        sock.close()
