"""One HTTP server on every CPU, the workers restarted when they die (cluster_workers.mjs).

Every worker calls app.listen(3000), as in Node: the primary opens port 3000
once and hands it to each worker. A worker here is a fork of the primary that
runs main() again (Node runs the file again), where cluster.is_primary is
False. PORT overrides 3000 and WORKERS the number of CPUs (for the tests).
"""
import asyncio
import os

import phaseloop
from phaseloop import cluster
from phaseloop.http import App

PORT = int(os.environ.get("PORT", 3000))


async def main():
    if cluster.is_primary:
        num_cpus = int(os.environ.get("WORKERS", os.cpu_count()))
        print(f"Primary {os.getpid()} starting {num_cpus} workers")

        for i in range(num_cpus):
            cluster.fork(target=main)

        @cluster.on("exit")
        def on_exit(worker, code, signal):
            print(f"Worker {worker.pid} died, restarting...")
            cluster.fork(target=main)

        await asyncio.Event().wait()       # Node's primary lives while it has workers
    else:
        app = App()

        @app.get("/")
        def root(req, res):
            res.json({"worker": os.getpid()})

        server = await app.listen(PORT)
        await server.serve_forever()


phaseloop.run(main())
