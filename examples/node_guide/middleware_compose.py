"""Middlewares composed the guide's way (middleware_compose.mjs).

The guide's hand-written compose() is phaseloop.middleware.compose: plain
functions that call next() without awaiting it run the rest of the chain, and
a final handler may take just (req, res).
"""
from types import SimpleNamespace as Obj

import phaseloop
from phaseloop.middleware import compose


def logger(req, res, next):
    print(f"{req.method} {req.url}")
    next()


def auth(req, res, next):
    req.user = "ada" if req.headers.get("authorization") == "Bearer secret" else None
    next()


def handler(req, res):
    res.body = f"hello {req.user}" if req.user else "who are you?"
    print(f"-> {res.body}")


app = compose([logger, auth, handler])


async def main():
    await app(Obj(method="GET", url="/", headers={"authorization": "Bearer secret"}), Obj())
    await app(Obj(method="GET", url="/private", headers={}), Obj())


phaseloop.run(main())
