"""examples/notes_api.py: CRUD, validation, rate limiting, and SQL injection
payloads stored as plain text."""
from __future__ import annotations

import importlib.util
import json

import pytest

from support.paths import EXAMPLES as EXAMPLES_DIR

from support.http import request, run_app

EXAMPLE = EXAMPLES_DIR / "notes_api.py"


@pytest.fixture(scope="module")
def notes():
    spec = importlib.util.spec_from_file_location("notes_api_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def post(port, path, obj, method="POST"):
    return request(port, method, path, json.dumps(obj).encode(),
                   headers={"Content-Type": "application/json"})


def test_crud(loop, notes):
    app = notes.create_app()

    async def client(port):
        r = await post(port, "/notes", {"title": "first", "body": "hello"})
        assert r.status == 201 and r.headers["location"] == "/notes/1"
        assert r.headers["x-content-type-options"] == "nosniff"
        note = r.json()
        assert (note["id"], note["title"], note["body"]) == (1, "first", "hello")
        r = await request(port, "GET", "/notes/1")
        assert r.json()["title"] == "first"
        r = await post(port, "/notes/1", {"body": "changed"}, method="PATCH")
        assert r.json()["body"] == "changed" and r.json()["title"] == "first"
        assert len((await request(port, "GET", "/notes")).json()) == 1
        assert (await request(port, "DELETE", "/notes/1")).status == 204
        assert (await request(port, "GET", "/notes/1")).status == 404
        assert (await request(port, "GET", "/notes/abc")).status == 404
        r = await post(port, "/notes", {"title": ""})
        assert r.status == 422
    run_app(loop, app, client)


PAYLOADS = [
    "'; DROP TABLE notes; --",
    "\" OR \"1\"=\"1",
    "1' OR '1'='1",
    "x'); DELETE FROM notes WHERE ('1'='1",
    "Robert'); DROP TABLE students;--",
    "%' UNION SELECT name, sql, 1, 1 FROM sqlite_master --",
    "\\'; SELECT 1; --",
]


def test_sql_injection_is_stored_as_text(loop, notes):
    app = notes.create_app()

    async def client(port):
        await post(port, "/notes", {"title": "canary", "body": "must survive"})
        for payload in PAYLOADS:
            r = await post(port, "/notes", {"title": payload, "body": payload})
            assert r.status == 201
            note_id = r.json()["id"]
            back = (await request(port, "GET", f"/notes/{note_id}")).json()
            assert back["title"] == payload and back["body"] == payload
        all_notes = (await request(port, "GET", "/notes?limit=200")).json()
        assert [n["title"] for n in all_notes] == ["canary", *PAYLOADS]
        # payloads in the search parameter are data too, and % / _ are literal
        from urllib.parse import quote
        for payload in PAYLOADS:
            found = (await request(port, "GET", "/notes?search=" + quote(payload))).json()
            assert [n["title"] for n in found] == [payload]
        found = (await request(port, "GET", "/notes?search=" + quote("%"))).json()
        assert [n["title"] for n in found] == [PAYLOADS[5]]
        # and in the path parameter
        r = await request(port, "GET", "/notes/" + quote("1 OR 1=1", safe=""))
        assert r.status == 404
    run_app(loop, app, client)
    # the table is intact and holds the payloads verbatim
    rows = app.db.execute("SELECT title FROM notes ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["canary", *PAYLOADS]
    tables = {r[0] for r in app.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "notes" in tables


def test_rate_limited(loop, notes):
    app = notes.create_app(rate_max=3)

    async def client(port):
        statuses = [(await request(port, "GET", "/notes")).status for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert (await request(port, "GET", "/")).status == 200    # "/" is not limited
    run_app(loop, app, client)


def test_cors_for_the_configured_origin(loop, notes):
    app = notes.create_app(origins=["https://notes.example"])

    async def client(port):
        r = await request(port, "GET", "/notes", headers={"Origin": "https://notes.example"})
        assert r.headers["access-control-allow-origin"] == "https://notes.example"
        r = await request(port, "GET", "/notes", headers={"Origin": "https://other.example"})
        assert "access-control-allow-origin" not in r.headers
    run_app(loop, app, client)
