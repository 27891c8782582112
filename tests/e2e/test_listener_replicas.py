"""`approvalmax listen` scaled out: replicas behind a load balancer share a PostgreSQL queue and warehouse."""

from __future__ import annotations

import re
import signal
import time

import psycopg2

from approvalmax_pipeline.sandbox.server import webhook_payload

from ..conftest import Workspace
from .test_listener import SECRET, Listener, listeners
from .test_reconcile import marked
from .truth import assert_equals_sandbox

ROUNDS = 6


def claims_of(listener: Listener, dsn: str) -> int:
    """Documents the replica's queue connection holds (pg_stat_activity names each replica's pid)."""
    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "select count(*) from pg_locks l join pg_stat_activity s using (pid) "
                "where l.locktype = 'advisory' and l.objsubid = 2 and s.application_name like %s",
                (f"approvalmax listen {listener.process.pid} %",),
            )
            return int(cursor.fetchone()[0])
    finally:
        connection.close()


def test_two_replicas_share_the_work_and_one_killed_mid_stream_loses_nothing(ws: Workspace, postgres_db: str) -> None:
    pg = ws.on_postgres(postgres_db)
    # as on two machines: a working folder each; the token family, queue and warehouse in PostgreSQL
    shared = {"SOURCES__APPROVALMAX__TOKEN_STORE": postgres_db}
    assert pg.cli("run", "--no-progress", env=shared).returncode == 0
    folders = [ws.root / "replica-a", ws.root / "replica-b"]
    with listeners(pg, "--destination", "postgres", folders=folders, env=shared, queue=postgres_db) as (a, b):
        sent, deleted, held_when_killed = 0, set(), 0
        for round_ in range(1, 4 * ROUNDS):
            alive = [r for r in (a, b) if r.process.poll() is None]
            if a in alive and round_ == ROUNDS // 2:
                pg.admin("POST", "config", latency=0.3)  # batches long enough to catch `a` holding a claim
            changes = pg.admin("POST", "mutate", modify=2, add=1, delete=1)
            deleted |= set(changes["deleted"])
            for i, touched in enumerate(pg.sandbox.dataset.touched):  # one call per event, to each in turn
                assert alive[i % len(alive)].post(webhook_payload([touched])).status_code == 200
                sent += 1
            if a in alive and round_ >= ROUNDS // 2:
                for _ in range(40):  # a's loader wakes every 0.5 s; no timing is asserted
                    held_when_killed = claims_of(a, postgres_db)
                    if held_when_killed:
                        a.process.send_signal(signal.SIGKILL)  # mid-batch: its claimed events go back
                        a.process.wait(timeout=30)
                        pg.admin("POST", "config", latency=0.0)
                        break
                    time.sleep(0.05)
            if a not in alive and round_ >= ROUNDS:
                break
        assert a.process.returncode == -signal.SIGKILL and held_when_killed > 0
        b.wait_loaded(sent)  # every answered event: b's, a's loaded, and a's claimed when it died
        assert b.post(webhook_payload([])).status_code == 200  # b carries on
    assert b.process.returncode == 0
    assert_equals_sandbox(pg)
    assert marked(pg) == deleted


def test_a_second_replica_in_one_working_folder_and_a_duckdb_warehouse_are_refused(
    ws: Workspace, postgres_db: str
) -> None:
    env = {"SOURCES__APPROVALMAX__WEBHOOK_SECRET": SECRET}
    duckdb = ws.cli("listen", "--port", "0", "--queue", postgres_db, env=env)
    assert duckdb.returncode == 2
    assert duckdb.stderr.strip().splitlines() == [
        "error: a PostgreSQL --queue is for listener replicas, which cannot share one DuckDB file: load into "
        "PostgreSQL (--destination postgres) or BigQuery, or give --queue a file path for a single listener"
    ]
    pg = ws.on_postgres(postgres_db)
    with listeners(pg, "--destination", "postgres", queue=postgres_db):
        second = pg.cli("listen", "--port", "0", "--destination", "postgres", "--queue", postgres_db, env=env)
    assert second.returncode == 4 and "give each replica on one machine its own working folder" in second.stderr
    nowhere = re.sub(r":\d+/", ":9/", postgres_db.replace("postgres:postgres@", "u:s3cret-pw@"))  # port 9: nothing
    unreachable = pg.cli("listen", "--port", "0", "--destination", "postgres", "--queue", nowhere, env=env)
    assert unreachable.returncode == 2 and len(unreachable.stderr.strip().splitlines()) == 1
    assert "error: cannot use the webhook queue postgresql://u@127.0.0.1:9/" in unreachable.stderr
    assert "s3cret-pw" not in unreachable.stderr + unreachable.stdout
