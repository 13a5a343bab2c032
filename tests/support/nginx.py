"""nginx for the deployment tests: Debian's package, installed when missing, run
on 127.0.0.1 from a folder of its own (its configuration, pid file, logs and
temporary files there; nothing of the machine's nginx is read or touched)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from support.http import fetch
from support.paths import EXAMPLES

#: The nginx site of examples/deploy/, as the tests run it.
SITE = EXAMPLES / "deploy" / "nginx.conf"

MAIN_CONF = """\
{user}
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/site.conf;
}}
"""


def nginx_binary() -> str:
    """The nginx executable; Debian's package is installed if it is missing. The
    test fails (it does not skip) when it can be neither found nor installed."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
    if found:
        return found
    reasons = []
    if shutil.which("apt-get") is None:
        pytest.fail("nginx is not installed and there is no apt-get to install it")
    for command in (["apt-get", "install", "-y", "--no-install-recommends", "nginx"],
                    ["apt-get", "update"],
                    ["apt-get", "install", "-y", "--no-install-recommends", "nginx"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if done.returncode != 0:
            reasons.append("%s: %s" % (" ".join(command), done.stderr.strip()[-500:]))
        elif command[1] == "install":
            break
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK)
                                      else None)
    if not found:
        pytest.fail("nginx could not be installed:\n" + "\n".join(reasons))
    return found


def site_config(listen_port: int, upstream_ports: list[int]) -> str:
    """examples/deploy/nginx.conf with its listen address and its upstream servers
    (one line each, in order) moved to 127.0.0.1."""
    text = SITE.read_text()
    lines = []
    ports = iter(upstream_ports)
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("server 10.0.0."):
            address = stripped.split()[1]
            line = line.replace(address, "127.0.0.1:%d" % next(ports))
        elif stripped == "listen 80;":
            line = line.replace("listen 80;", "listen 127.0.0.1:%d;" % listen_port)
        lines.append(line)
    if next(ports, None) is not None:
        raise AssertionError("examples/deploy/nginx.conf has fewer upstream servers than "
                             "the test starts")
    return "\n".join(lines) + "\n"


class Nginx:
    """nginx in the foreground (``daemon off``) from ``prefix``; :meth:`stop` after."""

    def __init__(self, prefix: Path, listen_port: int, upstream_ports: list[int]) -> None:
        self.prefix = prefix
        self.port = listen_port
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "site.conf").write_text(site_config(listen_port, upstream_ports))
        user = "user root;" if os.geteuid() == 0 else ""   # workers can use prefix/
        (prefix / "nginx.conf").write_text(MAIN_CONF.format(prefix=prefix, user=user))
        binary = nginx_binary()
        check = subprocess.run([binary, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                                "-e", str(prefix / "error.log")],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen([binary, "-p", str(prefix), "-c",
                                      str(prefix / "nginx.conf"), "-e",
                                      str(prefix / "error.log")],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Until nginx answers a request (whatever the upstreams say)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fetch(self.port, "/", timeout=2)
                return
            except ConnectionRefusedError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("nginx did not start: %s" % self.error_log())
                time.sleep(0.05)

    def error_log(self) -> str:
        try:
            return (self.prefix / "error.log").read_text()
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """Graceful stop (SIGQUIT), SIGKILL to its group if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
