"""The FastAPI app of ``benchmarks.asgi``: ``GET /`` and ``GET /hello`` answer a
small JSON document; ``POST /echo`` validates a JSON body with pydantic and
sends it back (the JSON round trip)."""
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Order(BaseModel):
    id: int
    customer: str
    items: list[str]
    total: float


@app.get("/")
@app.get("/hello")
async def hello():
    return {"message": "Hello, World!"}


@app.post("/echo")
async def echo(order: Order):
    return order
