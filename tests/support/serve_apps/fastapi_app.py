"""A FastAPI app for the ``phaseloop serve`` tests: ``GET /`` (as asgi_app.py),
``GET /items/{item_id}``, ``POST /echo`` (a JSON body validated by pydantic and
sent back)."""
import os

from fastapi import FastAPI, Request
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    name: str
    count: int


@app.get("/")
async def root(request: Request):
    return {"worker": os.getpid(), "path": request.url.path,
            "client": request.client.host if request.client else None,
            "scheme": request.url.scheme, "root_path": request.scope.get("root_path", "")}


@app.get("/items/{item_id}")
async def item(item_id: int):
    return {"item_id": item_id, "worker": os.getpid()}


@app.post("/echo")
async def echo(item: Item):
    return item
