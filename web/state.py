"""The running app's `Runtime` (runtime.py), typed, for the blueprints."""

from __future__ import annotations

from quart import current_app

from runtime import Runtime


def runtime() -> Runtime:
    return current_app.extensions["runtime"]
