"""Process faults on real `python app.py` processes (§9 SIGTERM, §1 PostgreSQL).

- SIGTERM under load (memory mode): new work is refused with 503 at once, everything accepted
  is finished and delivered, the process exits 0.
- SIGKILL under load (PostgreSQL mode): nothing accepted is lost; the restarted instance takes
  over the killed one's rows when their lease runs out. (tests/storage/test_pg_processes.py has
  the variant where a *second* instance takes over, and clean SIGTERM hand-over;
  tests/storage/test_pg_app.py has pg_terminate_backend mid-run and a PostgreSQL outage.)
"""

from __future__ import annotations

import signal
from collections import Counter

from tests.hardening.processes import Traffic, greeting, launch
from tests.storage.processes import start_instances
from tests.waiting import wait_until


def test_sigterm_under_load_drains_exits_zero_and_loses_nothing(fake_ollama, fake_router, tmp_path):
    fake_ollama.delay = 0.05  # a backlog builds up: the load outpaces two workers
    service = launch(tmp_path, fake_ollama, fake_router, WORKER_COUNT="2", SHUTDOWN_GRACE_S="25")
    traffic = Traffic([service.url], greeting, threads=4, stop_when_refused=True)
    try:
        traffic.start()
        wait_until(lambda: len(traffic.acked) >= 60 and len(fake_router.replies) >= 5, timeout=30,
                   message="load under way")
        service.proc.send_signal(signal.SIGTERM)
        assert traffic.join(timeout=60)  # each thread ends at its first 503 or refused connection
        assert service.proc.wait(timeout=60) == 0
    finally:
        traffic.stop()
        service.close()
    output = service.output()
    accepted = set(traffic.acked)
    delivered = Counter(r["headers"]["idempotency-key"] for r in fake_router.replies)
    assert accepted <= set(delivered), f"lost {len(accepted - set(delivered))} of {len(accepted)}"
    assert max(delivered.values()) == 1
    # A post cut off as the server closed got no answer; if it had been accepted, it was answered too.
    unanswered_users = {body["user_id"] for body in traffic.unanswered}
    extra = [r for r in fake_router.replies if r["headers"]["idempotency-key"] not in accepted]
    assert all(r["body"]["user_id"] in unanswered_users for r in extra), extra
    assert traffic.statuses.get(503, 0) + sum(traffic.errors.values()) >= 1  # the load met the drain
    assert set(traffic.statuses) <= {202, 503}, traffic.statuses
    assert "interaction not processed before shutdown" not in output
    assert '"result": "complete"' in output and "Traceback" not in output
    print(f"SIGTERM under load: {len(accepted)} accepted, {len(delivered)} delivered, "
          f"{traffic.statuses.get(503, 0)} refused with 503, exit 0")


def test_sigkill_under_load_in_postgresql_mode_the_restarted_instance_finishes_everything(
        pg, fake_ollama, fake_router, tmp_path):
    fake_ollama.delay = 0.1
    env = {"WORKER_COUNT": "4", "QUEUE_LEASE_S": "1", "LOG_LEVEL": "WARNING"}
    (first,) = start_instances(1, pg, fake_ollama, fake_router, tmp_path, **env)
    traffic = Traffic([first.url], greeting, threads=3, stop_when_refused=True)
    try:
        traffic.start()
        wait_until(lambda: len(fake_router.replies) >= 10 and len(traffic.acked) >= 40, timeout=30,
                   message="load under way")
        first.proc.kill()  # SIGKILL: no drain, no release of claimed rows
        first.proc.wait(10)
        traffic.stop()
    finally:
        traffic.stop()
        first.close()
    accepted = set(traffic.acked)
    unfinished = pg.value("SELECT count(*) FROM ai_interaction_queue WHERE status <> 'done'")
    assert unfinished > 0, "the kill should leave work behind"
    (restarted,) = start_instances(1, pg, fake_ollama, fake_router, tmp_path, **env)
    try:
        # Posts cut off by the kill got no answer: the router posts them again (same message id).
        # Those the dead instance had committed are acknowledged as duplicates of the first id.
        accepted |= set(traffic.retry_unanswered(restarted.url))
        wait_until(lambda: accepted <= {r["headers"]["idempotency-key"] for r in fake_router.replies},
                   timeout=60, message="every accepted interaction delivered")
        wait_until(lambda: pg.value("SELECT count(*) FROM ai_interaction_queue WHERE status <> 'done'") == 0,
                   timeout=30, message="every row done")
        assert restarted.sigterm() == 0
    finally:
        restarted.close()
    delivered = Counter(r["headers"]["idempotency-key"] for r in fake_router.replies)
    assert set(delivered) == accepted
    # Only what was in flight at the kill may be posted twice (same Idempotency-Key: the router
    # drops the second); at most one per worker.
    twice = [k for k, v in delivered.items() if v > 1]
    assert len(twice) <= 4 and max(delivered.values()) <= 2, twice
    assert pg.value("SELECT count(*) FROM ai_interaction_queue") == len(accepted)
    print(f"SIGKILL under load: {len(accepted)} accepted ({len(traffic.unanswered)} posted again after an "
          f"unanswered post), {unfinished} unfinished at the kill, {len(delivered)} delivered, "
          f"{len(twice)} posted twice (same Idempotency-Key)")
