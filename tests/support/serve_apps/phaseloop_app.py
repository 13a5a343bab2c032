"""A phaseloop.http App for the ``phaseloop serve`` tests, answering as asgi_app.py
does: ``GET /`` gives ``{"worker", "path", "client", "scheme", "root_path"}``,
``/slow/{seconds}`` answers after a delay; ``/limited`` is rate-limited to 3
requests a minute per client (``req.client``)."""
import asyncio
import os

from phaseloop.http import App, rate_limit

app = App()


def describe(req):
    return {"worker": os.getpid(), "path": req.path,
            "client": req.client[0] if req.client else None,
            "scheme": req.scheme, "root_path": req.root_path}


@app.get("/")
def root(req, res):
    return describe(req)


@app.get("/slow/{seconds}")
async def slow(req, res):
    print("worker %d got %s" % (os.getpid(), req.path), flush=True)
    await asyncio.sleep(float(req.params["seconds"]))
    return describe(req)


@app.get("/limited", rate_limit(window=60, max=3))
def limited(req, res):
    return describe(req)
