"""The local servers of `python3 dev.py services up`: a 3-node Galera cluster and a PostgreSQL hot standby.

Real servers (tools/services.py starts them; .ci/run does that before the suite). Each test
skips, saying why, when what it needs is not up, and removes what it created.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import (
    SERVERS,
    galera_available,
    kill_galera_node,
    replica_available,
    restart_galera_node,
    services,
    url_rows,
    wait_for,
)

ROOT = Path(__file__).resolve().parent.parent
REPLICATION_WAIT = 15.0  # seconds a committed row may take to show up on another node or the standby
EVICTION_WAIT = 30.0  # a crashed node leaves the others' view after evs.suspect_timeout (5 s) and a bit


def wsrep(url: str, variable: str) -> str:
    """One wsrep status variable of a node."""
    ((_, value),) = url_rows(url, f"SHOW GLOBAL STATUS LIKE '{variable}'")
    return str(value)


def notes(url: str, table: str) -> set[str]:
    """The notes of ``table`` as one node sees them."""
    return {str(r[0]) for r in url_rows(url, f"SELECT note FROM {table}")}


def dev_services(*args: str, timeout: float = 200) -> subprocess.CompletedProcess[str]:
    """``python3 dev.py services ARGS`` (the command .ci/run and people use)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "dev.py"), "services", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture
def galera_table(galera_nodes: list[str]) -> Iterator[str]:
    """A fresh table in the cluster's ``test`` database, created on node 1; dropped afterwards."""
    name = f"maim_services_{os.getpid()}_{secrets.token_hex(4)}"
    url_rows(galera_nodes[0], f"CREATE TABLE {name} (id INT PRIMARY KEY, note VARCHAR(60) NOT NULL)")
    try:
        yield name
    finally:
        for url in galera_nodes:  # on the first node that answers (a failed test may leave one down)
            try:
                url_rows(url, f"DROP TABLE IF EXISTS {name}")
                break
            except sa.exc.DBAPIError:
                continue


def test_cluster_of_three_replicates_a_write_to_every_node(galera_nodes: list[str], galera_table: str) -> None:
    for url in galera_nodes:
        assert wsrep(url, "wsrep_cluster_size") == "3"
        assert wsrep(url, "wsrep_local_state_comment") == "Synced"
        assert wsrep(url, "wsrep_cluster_status") == "Primary"
    url_rows(galera_nodes[0], f"INSERT INTO {galera_table} VALUES (1, 'written on node 1')")
    for url in galera_nodes[1:]:
        wait_for(lambda url=url: "written on node 1" in notes(url, galera_table), REPLICATION_WAIT, f"the row on {url}")


@pytest.mark.slow
def test_a_killed_node_rejoins_with_the_rows_written_meanwhile(galera_nodes: list[str], galera_table: str) -> None:
    node1, node2, node3 = galera_nodes
    url_rows(node1, f"INSERT INTO {galera_table} VALUES (1, 'before the crash')")
    wait_for(lambda: "before the crash" in notes(node3, galera_table), REPLICATION_WAIT, "the row on node 3")

    kill_galera_node(3)
    try:
        with pytest.raises(sa.exc.OperationalError):
            url_rows(node3, "SELECT 1")
        for url in (node1, node2):  # the survivors keep quorum (2 of 3) once they have evicted node 3
            wait_for(lambda url=url: wsrep(url, "wsrep_cluster_size") == "2", EVICTION_WAIT, f"node 3 evicted ({url})")
            assert wsrep(url, "wsrep_cluster_status") == "Primary"
        url_rows(node1, f"INSERT INTO {galera_table} VALUES (2, 'while node 3 was down, on node 1')")
        url_rows(node2, f"INSERT INTO {galera_table} VALUES (3, 'while node 3 was down, on node 2')")
        expected = {"before the crash", "while node 3 was down, on node 1", "while node 3 was down, on node 2"}
        for url in (node1, node2):
            wait_for(lambda url=url: notes(url, galera_table) == expected, REPLICATION_WAIT, f"the rows on {url}")
    finally:
        restart_galera_node(3)  # IST from a survivor; Synced when it returns

    assert wsrep(node3, "wsrep_local_state_comment") == "Synced"
    for url in galera_nodes:
        assert wsrep(url, "wsrep_cluster_size") == "3"
    wait_for(lambda: notes(node3, galera_table) == expected, REPLICATION_WAIT, "the rows on node 3")
    url_rows(node3, f"INSERT INTO {galera_table} VALUES (4, 'written on node 3 again')")
    wait_for(lambda: "written on node 3 again" in notes(node1, galera_table), REPLICATION_WAIT, "node 3's row on 1")


def test_replica_follows_the_primary_and_refuses_writes(replica_db: tuple[str, str]) -> None:
    primary, replica = replica_db
    url_rows(primary, "CREATE TABLE replicated (id INT PRIMARY KEY, note TEXT NOT NULL)")
    url_rows(primary, "INSERT INTO replicated VALUES (1, 'written on the primary')")
    rows = wait_for(lambda: url_rows(replica, "SELECT id, note FROM replicated"), REPLICATION_WAIT, "the row on 5433")
    assert rows == [(1, "written on the primary")]
    assert url_rows(replica, "SELECT pg_is_in_recovery()") == [(True,)]
    for statement in ("INSERT INTO replicated VALUES (2, 'on the standby')", "CREATE TABLE refused (id INT)"):
        with pytest.raises(sa.exc.DBAPIError) as refused:
            url_rows(replica, statement)
        assert getattr(refused.value.orig, "sqlstate", None) == "25006", refused.value  # read_only_sql_transaction
    assert url_rows(primary, "SELECT count(*) FROM replicated") == [(1,)]


def test_primary_has_the_replication_line_once() -> None:
    reason = replica_available()
    if reason:
        pytest.skip(reason)
    services.ensure_replication_hba()  # again: idempotent
    ((hba_file,),) = url_rows(SERVERS["postgresql"]["admin"], "SHOW hba_file")
    rules = [line.split("#", 1)[0].split() for line in Path(str(hba_file)).read_text().splitlines()]
    assert rules.count(services.PG_HBA_LINE.split()) == 1


def test_status_prints_one_line_per_service_and_up_again_changes_nothing() -> None:
    reason = galera_available() or replica_available()
    if reason:
        pytest.skip(reason)
    status = dev_services("status", timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr
    lines = [line.split() for line in status.stdout.splitlines()]
    assert [(line[0], line[2]) for line in lines] == [
        ("galera-node1", "up"),
        ("galera-node2", "up"),
        ("galera-node3", "up"),
        ("pg-replica", "up"),
    ]
    assert [line[1] for line in lines] == ["127.0.0.1:13306", "127.0.0.1:13307", "127.0.0.1:13308", "127.0.0.1:5433"]
    again = dev_services("up", timeout=60)  # everything is up: checks, and leaves it as it is
    assert again.returncode == 0, again.stdout + again.stderr
    assert "starting" not in again.stdout
    assert "base backup" not in again.stdout


@pytest.mark.slow
def test_up_repairs_a_crashed_node_and_a_crashed_standby() -> None:
    reason = galera_available() or replica_available()
    if reason:
        pytest.skip(reason)
    kill_galera_node(2)
    services.kill_replica()
    try:
        assert dev_services("status", timeout=60).returncode != 0
        repaired = dev_services("up")
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert "starting node 2" in repaired.stdout
        assert "restarting the existing standby" in repaired.stdout  # not a new base backup
    finally:
        if galera_available():
            restart_galera_node(2)
    assert dev_services("status", timeout=60).returncode == 0
    assert galera_available() is None
    assert replica_available() is None
