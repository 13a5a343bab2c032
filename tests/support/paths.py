"""Where things are, for tests that run programs or read files."""
from pathlib import Path

#: The tests/ folder.
TESTS = Path(__file__).resolve().parents[1]
#: The repository's root.
REPO_ROOT = TESTS.parent
#: Node twins (a .js program and its Python port each).
NODE_DIR = TESTS / "node"
#: Sample asyncio programs run on both loops.
SAMPLES_DIR = TESTS / "samples"
#: The examples/ folder.
EXAMPLES = REPO_ROOT / "examples"
#: The apps the ``phaseloop serve`` tests run (tests/support/serve_apps/).
SERVE_APPS = TESTS / "support" / "serve_apps"
