"""Shared bits of the admin API tests."""

from __future__ import annotations

import contextlib
from typing import Iterator

from cryptography.fernet import Fernet

ADMIN_KEY = "admin-key-for-tests-0123"
FERNET_KEY = Fernet.generate_key().decode()
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}



class RecordingLogger:
    """Stands in for a module's structlog logger: records every call (level, event, fields)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, level: str):  # noqa: ANN204
        return lambda *args, **kwargs: self.calls.append((level, args, kwargs))

    def text(self) -> str:
        return repr(self.calls)


@contextlib.contextmanager
def recorded_logs(*modules: object) -> Iterator[RecordingLogger]:
    """Replace `log` in each module by one RecordingLogger for the duration of the block."""
    recorder = RecordingLogger()
    originals = [(m, m.log) for m in modules]  # type: ignore[attr-defined]
    for module, _ in originals:
        module.log = recorder  # type: ignore[attr-defined]
    try:
        yield recorder
    finally:
        for module, original in originals:
            module.log = original  # type: ignore[attr-defined]
