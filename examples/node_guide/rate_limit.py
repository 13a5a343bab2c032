"""At most 100 requests per client and 15 minutes under /api/ (rate_limit.mjs).

windowMs is window_ms (milliseconds; window= takes seconds); the 101st request
is answered 429 with the message as plain text, as express-rate-limit does.
PORT overrides 3000.
"""
import os

import phaseloop
from phaseloop.http import App, rate_limit

app = App()

limiter = rate_limit(
    window_ms=15 * 60 * 1000,
    max=100,
    message="Too many requests",
)

app.use("/api/", limiter)


@app.get("/api/notes")
def notes(req, res):
    res.json([{"id": 1, "title": "first"}])


@app.get("/health")
def health(req, res):
    res.send("ok")


async def main():
    server = await app.listen(int(os.environ.get("PORT", 3000)))
    await server.serve_forever()


phaseloop.run(main())
