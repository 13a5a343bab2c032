"""A three-stage pipeline of real programs, piped through the parent, on each loop.

``generate | tr a-z A-Z | sha256sum``, where every ``|`` is the parent: one task
per stage copies the previous child's stdout into the next child's stdin with
``write`` + ``drain`` (so the stages run concurrently, and the pipes' flow
control is the loop's), the generator is a Python child writing 4 MiB of seeded
random bytes (and a line on stderr), and the parent checks every byte count,
the digest and each exit status.  A second test has the middle stage stop
reading and exit with status 5: the parent's writes into it must fail with a
broken pipe (not hang), and every child must still be reaped with its status.
"""
from __future__ import annotations

import asyncio
import hashlib
import random
import shutil
import sys

import pytest

from integration_support import run

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(not all(shutil.which(p) for p in ("tr", "sha256sum", "sh")),
                                 reason="needs tr, sha256sum and sh (coreutils)")]

PIPE = asyncio.subprocess.PIPE
SIZE = 4 * 1024 * 1024
SEED = 11
GENERATOR = ("import random, sys\n"
             f"data = random.Random({SEED}).randbytes({SIZE})\n"
             "for offset in range(0, len(data), 100_000):\n"
             "    sys.stdout.buffer.write(data[offset:offset + 100_000])\n"
             "sys.stdout.flush()\n"
             "sys.stderr.write('generated\\n')\n")
UPPER = bytes.maketrans(b"abcdefghijklmnopqrstuvwxyz", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")


async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> int:
    """Copy ``source`` into ``sink`` until EOF, then close ``sink``; bytes copied."""
    copied = 0
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
            copied += len(chunk)
    finally:
        sink.close()
    await sink.wait_closed()
    return copied


async def start(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*argv, stdin=PIPE, stdout=PIPE, stderr=PIPE)


def test_generate_tr_sha256sum(loop):
    expected = random.Random(SEED).randbytes(SIZE)

    async def main() -> tuple[list[int], bytes, list[bytes], list[int | None]]:
        generate = await asyncio.create_subprocess_exec(
            sys.executable, "-c", GENERATOR, stdout=PIPE, stderr=PIPE)
        upper = await start("tr", "a-z", "A-Z")
        checksum = await start("sha256sum")
        assert generate.stdout and upper.stdin and upper.stdout and checksum.stdin
        assert checksum.stdout and generate.stderr and upper.stderr and checksum.stderr
        copied = await asyncio.gather(pump(generate.stdout, upper.stdin),
                                      pump(upper.stdout, checksum.stdin))
        output = await checksum.stdout.read()
        errors = await asyncio.gather(generate.stderr.read(), upper.stderr.read(),
                                      checksum.stderr.read())
        statuses = await asyncio.gather(generate.wait(), upper.wait(), checksum.wait())
        return list(copied), output, list(errors), list(statuses)

    copied, output, errors, statuses = run(loop, main(), timeout=30)
    assert statuses == [0, 0, 0]
    assert copied == [SIZE, SIZE]
    assert output.decode() == f"{hashlib.sha256(expected.translate(UPPER)).hexdigest()}  -\n"
    assert errors == [b"generated\n", b"", b""]


def test_a_stage_that_stops_reading_breaks_the_pipe(loop):
    async def main() -> tuple[BaseException | int, bytes, list[int | None]]:
        generate = await asyncio.create_subprocess_exec(
            sys.executable, "-c", GENERATOR, stdout=PIPE, stderr=asyncio.subprocess.DEVNULL)
        head = await start("sh", "-c", "head -c 1000; exit 5")
        assert generate.stdout and head.stdin and head.stdout
        copying = asyncio.ensure_future(pump(generate.stdout, head.stdin))
        kept = await head.stdout.read()
        head_status = await head.wait()
        outcome: BaseException | int
        try:
            outcome = await copying
        except (BrokenPipeError, ConnectionResetError) as exc:
            outcome = exc
        # the generator is left writing into a pipe nobody reads: stop it
        generate.kill()
        await generate.communicate()
        return outcome, kept, [head_status, generate.returncode]

    outcome, kept, statuses = run(loop, main(), timeout=30)
    assert kept == random.Random(SEED).randbytes(1000)
    assert isinstance(outcome, (BrokenPipeError, ConnectionResetError)), outcome
    assert statuses[0] == 5
    assert statuses[1] in (0, -9)  # it may have written everything before the kill
