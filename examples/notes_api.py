"""A small notes API on phaseloop.http: sqlite3, validation, rate limiting.

Run it::

    python examples/notes_api.py --port 3000 [--db notes.sqlite3]
    curl -s -X POST localhost:3000/notes -H 'Content-Type: application/json' \\
         -d '{"title": "hello", "body": "first note"}'
    curl -s localhost:3000/notes
    curl -s 'localhost:3000/notes?search=hel'

Every SQL statement is parameterized (``?`` placeholders): user input is
data, never SQL. sqlite3 calls are short and local, so they run on the loop
thread; a bigger database would go to ``loop.run_in_executor``.
"""
from __future__ import annotations

import argparse
import sqlite3
import time

from pydantic import BaseModel, Field

import phaseloop
from phaseloop.http import App, HTTPError, cors, rate_limit, security_headers, validate


class NoteIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=10_000)


class NotePatch(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    body: str | None = Field(default=None, max_length=10_000)


class ListQuery(BaseModel):
    search: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=50, ge=1, le=200)


SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def _row(row: sqlite3.Row) -> dict:
    return {"id": row["id"], "title": row["title"], "body": row["body"], "created": row["created"]}


def _note_id(req) -> int:
    try:
        return int(req.params["id"])
    except ValueError:
        raise HTTPError(404, "Not Found") from None


def create_app(db_path: str = ":memory:", *, rate_max: int = 100, rate_window: float = 15 * 60,
               origins: list[str] | None = None) -> App:
    """Build the notes App on a sqlite database at ``db_path``."""
    db = sqlite3.connect(db_path, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute(SCHEMA)
    db.commit()

    app = App(max_body_size=64 * 1024)
    app.db = db  # type: ignore[attr-defined]   # for tests and shutdown
    app.use(security_headers())
    app.use(cors(origins=origins or ["http://localhost:3000"],
                 methods=["GET", "POST", "PATCH", "DELETE"], headers=["Content-Type"]))
    app.use("/notes", rate_limit(window=rate_window, max=rate_max))

    @app.get("/")
    async def index(req, res):
        return {"service": "notes", "endpoints": ["/notes", "/notes/{id}"]}

    @app.get("/notes", validate(query=ListQuery))
    async def list_notes(req, res):
        q = req.validated_query
        if q.search:
            # The pattern is a bound parameter; LIKE's own wildcards are escaped.
            pattern = "%" + q.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = db.execute("SELECT * FROM notes WHERE title LIKE ? ESCAPE '\\' "
                              "ORDER BY id LIMIT ?", (pattern, q.limit)).fetchall()
        else:
            rows = db.execute("SELECT * FROM notes ORDER BY id LIMIT ?", (q.limit,)).fetchall()
        return [_row(r) for r in rows]

    @app.post("/notes", validate(body=NoteIn))
    async def create_note(req, res):
        note = req.validated_body
        cur = db.execute("INSERT INTO notes (title, body, created) VALUES (?, ?, ?)",
                         (note.title, note.body, time.time()))
        db.commit()
        row = db.execute("SELECT * FROM notes WHERE id = ?", (cur.lastrowid,)).fetchone()
        res.status(201).set("Location", f"/notes/{cur.lastrowid}")
        return _row(row)

    @app.get("/notes/{id}")
    async def get_note(req, res):
        row = db.execute("SELECT * FROM notes WHERE id = ?", (_note_id(req),)).fetchone()
        if row is None:
            raise HTTPError(404, "Note not found")
        return _row(row)

    @app.patch("/notes/{id}", validate(body=NotePatch))
    async def patch_note(req, res):
        note_id = _note_id(req)
        patch = req.validated_body
        if db.execute("SELECT 1 FROM notes WHERE id = ?", (note_id,)).fetchone() is None:
            raise HTTPError(404, "Note not found")
        if patch.title is not None:
            db.execute("UPDATE notes SET title = ? WHERE id = ?", (patch.title, note_id))
        if patch.body is not None:
            db.execute("UPDATE notes SET body = ? WHERE id = ?", (patch.body, note_id))
        db.commit()
        return _row(db.execute("SELECT * FROM notes WHERE id = ?", (note_id,)).fetchone())

    @app.delete("/notes/{id}")
    async def delete_note(req, res):
        cur = db.execute("DELETE FROM notes WHERE id = ?", (_note_id(req),))
        db.commit()
        if cur.rowcount == 0:
            raise HTTPError(404, "Note not found")
        res.status(204).send()

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--db", default="notes.sqlite3")
    args = parser.parse_args()
    app = create_app(args.db)

    async def serve() -> None:
        server = await app.listen(args.port, args.host)
        print(f"notes API on http://{args.host}:{args.port}", flush=True)
        async with server:
            await server.serve_forever()

    try:
        phaseloop.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
