"""The PostgreSQL fixtures of tests/storage (a fresh schema per test), for the hardening tests."""

from tests.storage.conftest import pg, pg_available  # noqa: F401 - fixtures
