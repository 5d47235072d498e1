"""A taken port or a host that cannot be bound: one clear line naming it, a non-zero exit, no traceback."""

from __future__ import annotations

import socket

from tests.app_process import start_app


def _finished(tmp_path, **env):
    app = start_app(tmp_path, **env)
    status = app.proc.wait(timeout=30)
    return status, app.text().strip().splitlines()


def test_a_taken_port_is_one_line_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, lines = _finished(tmp_path, MODULE_PORT=str(port))
    assert status != 0
    assert lines == [f"cannot listen on 127.0.0.1:{port}: port {port} is already in use; stop what uses it "
                     f"or set MODULE_PORT to a free port"]


def test_a_host_that_is_not_this_machine_is_one_line_naming_it(tmp_path):
    status, lines = _finished(tmp_path, MODULE_HOST="host.invalid")
    assert status != 0
    assert len(lines) == 1 and lines[0].startswith("cannot listen on host.invalid:")
    assert "MODULE_HOST" in lines[0] and "Traceback" not in lines[0]
