"""benchmarks.cluster.running_server, which the cluster and ASGI benchmarks start
their multi-process servers with, leaves none of a server's processes behind.

gunicorn's master, stopped with SIGINT while its uvicorn workers ignored the
SIGQUIT it sent them, was killed after the grace period and its workers ran on,
one pair per benchmark run. The server here forks a worker that ignores Ctrl-C
and sleeps, which is what those workers did.
"""
import json
import subprocess
import sys
import textwrap

from support.cluster import assert_gone
from support.paths import REPO_ROOT

SERVER = textwrap.dedent("""\
    import os, signal, socket, sys, time
    port = int(sys.argv[1])
    if os.fork() == 0:                    # a worker deaf to Ctrl-C
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        time.sleep(60)
        os._exit(0)
    server = socket.create_server(("127.0.0.1", port))
    while True:
        conn, _ = server.accept()
        conn.recv(1000)
        conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n")
        conn.close()
    """)

DRIVER = textwrap.dedent("""\
    import json, sys
    from benchmarks.cluster import running_server
    from benchmarks.harness import free_port
    port = free_port()
    with running_server([sys.executable, "-c", sys.argv[1], str(port)], port) as proc:
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            workers = [int(pid) for pid in f.read().split()]
    print(json.dumps({"leader": proc.returncode, "workers": workers}))
    """)


def test_a_worker_that_ignores_ctrl_c_does_not_outlive_its_server():
    done = subprocess.run([sys.executable, "-c", DRIVER, SERVER], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["leader"] is not None and len(result["workers"]) == 1
    assert_gone(result["workers"], orphans=True)
