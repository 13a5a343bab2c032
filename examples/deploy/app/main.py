"""The app the deployment examples run: a FastAPI app with the probes a
Kubernetes Deployment and a load balancer use.

    phaseloop serve main:app --workers 4 --host 0.0.0.0 --port 8000 --proxy-headers

``GET /healthz`` (liveness: the worker's loop answers) and ``GET /readyz``
(readiness) answer 200; ``GET /`` says which worker answered and who the
client is (behind the proxy: the address from X-Forwarded-For).
"""
import os

from fastapi import FastAPI, Request

app = FastAPI()


@app.get("/healthz")
async def healthz():
    return {"ok": True}


@app.get("/readyz")
async def readyz():
    return {"ready": True}


@app.get("/")
async def root(request: Request):
    return {"worker": os.getpid(), "client": request.client.host if request.client else None}
