"""The suite's per-test time limit ends a test that swallows its timeout (support/hung_tests.py)."""
import subprocess
import sys
import textwrap

HUNG_TEST = '''
import asyncio
import time

def test_swallows_its_timeout():
    # An event loop's callback catches the failure the timeout raises, as
    # asyncio's Handle catches any exception, and the loop goes on waiting.
    loop = asyncio.new_event_loop()
    def callback():
        try:
            time.sleep(60)
        except BaseException:
            pass
    loop.call_soon(callback)
    loop.run_until_complete(asyncio.sleep(60))

def test_after():
    pass
'''


def test_a_test_that_swallows_its_timeout_ends_the_run(tmp_path, pytestconfig):
    (tmp_path / "test_hung.py").write_text(textwrap.dedent(HUNG_TEST))
    conftest = pytestconfig.rootpath / "tests" / "conftest.py"
    (tmp_path / "conftest.py").write_text(conftest.read_text())
    (tmp_path / "support").symlink_to(pytestconfig.rootpath / "tests" / "support")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=1",
         "-o", "timeout_grace=1", str(tmp_path / "test_hung.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "is still running 1 s after its timeout failed it" in proc.stderr
    assert "test_swallows_its_timeout" in proc.stderr     # the stack of the hung test
    assert "in run_until_complete" in proc.stderr          # where the loop went on waiting
