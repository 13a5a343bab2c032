"""Helpers shared by the test suite (tests/conftest.py puts tests/ on the path)."""
