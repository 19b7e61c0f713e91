"""maim_db on a 3-node MariaDB Galera cluster (``python3 dev.py services up``).

No database-wide lock (GET_LOCK is node-local on Galera, so the opt-in writer lock is
refused): write transactions run SERIALIZABLE on their node, Galera's certification rejects
the loser of a conflict between nodes at commit, and that surfaces as
TransactionConflictError, which the retrying APIs run again.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any

import peewee
import pytest
import sqlalchemy as sa
from helpers import url_rows, wait_for
from procs import CHILDREN, MODELS, Child, Counter, Item, Parent, bot, prepare, service

import maim_db
from maim_db import Bridge
from maim_db.bench.spawn import Job, run_spawned

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster_db(galera_nodes: list[str]) -> Iterator[list[str]]:
    """A throwaway database on the cluster: its URL on each of the three nodes."""
    name = f"maim_g_{secrets.token_hex(4)}"
    url_rows(galera_nodes[0], f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    urls = [u.rsplit("/", 1)[0] + f"/{name}" for u in galera_nodes]
    try:
        for url in urls:  # DDL replicates: wait until every node has it
            wait_for(lambda url=url: url_rows(url, "SELECT 1") is not None, 30, f"{name} on {url}")
        yield urls
    finally:
        url_rows(galera_nodes[0], f"DROP DATABASE IF EXISTS {name}")


def test_the_writer_lock_is_refused_on_galera_by_both_orms(cluster_db: list[str]) -> None:
    with Bridge(f"{cluster_db[0]}?writer_lock=true") as bridge:
        with pytest.raises(maim_db.ConfigurationError, match="Galera") as info, bridge.peewee.atomic():
            pass
        assert "writer_lock" in (info.value.hint or "")
        with pytest.raises(maim_db.ConfigurationError, match="Galera"), bridge.session() as s:
            s.execute(sa.text("SELECT 1"))


def test_a_race_between_two_nodes_is_a_conflict_never_a_lost_update(cluster_db: list[str]) -> None:
    # Both nodes read the counter, then both write it: certification lets one commit and
    # rolls the other back.
    class Tally(maim_db.Model):
        n = peewee.IntegerField(default=0)

    bridges = [Bridge(url) for url in cluster_db[:2]]
    try:
        for b in bridges:
            b.bind(Tally)
        bridges[0].create_tables()
        bridges[0].peewee.execute_sql("INSERT INTO tally (id, n) VALUES (1, 0)")
        wait_for(lambda: url_rows(cluster_db[1], "SELECT n FROM tally WHERE id = 1") == [(0,)], 30, "replication")
        dbs = [b.peewee for b in bridges]
        outcomes: list[Any] = []
        with dbs[0].atomic(), dbs[1].atomic():
            values = [db.execute_sql("SELECT n FROM tally WHERE id = 1").fetchone()[0] for db in dbs]
            for db, value in zip(dbs, values, strict=True):
                db.execute_sql("UPDATE tally SET n = %s WHERE id = 1", (value + 1,))
            # leaving the blocks commits node 2's transaction first, then node 1's
        outcomes.append("both committed")
    except maim_db.TransactionConflictError as exc:
        outcomes.append(exc)
    finally:
        for b in bridges:
            b.close()
    final = url_rows(cluster_db[2], "SELECT n FROM tally WHERE id = 1")
    assert final == [(1,)], (final, outcomes)  # one increment, from the winner
    assert isinstance(outcomes[0], maim_db.TransactionConflictError), outcomes
    assert outcomes[0].orig is not None


def _torture(urls: list[str], mode: str, seconds: float) -> dict[str, Any]:
    # Bots and services spread over the three nodes (each process's bridge on another node).
    jobs: list[Job] = [(bot, (urls[n % 3], seconds, n, mode)) for n in range(3)]
    jobs += [(service, (urls[(n + 1) % 3], seconds, 10 + n, mode)) for n in range(3)]
    outs = run_spawned(jobs, timeout=seconds + 240)
    keys = ("increments", "inserted", "duplicates", "created", "deleted", "conflicts")
    total: dict[str, Any] = {k: sum(o[k] for o in outs) for k in keys}
    total["failures"] = [f for o in outs for f in o["failures"]]
    return total


@pytest.mark.parametrize("mode", ["retrying", "plain"])
def test_torture_across_three_nodes_loses_nothing(cluster_db: list[str], mode: str) -> None:
    prepare(cluster_db[0])
    total = _torture(cluster_db, mode, seconds=8.0)
    print(f"galera torture ({mode}): { {k: v for k, v in total.items() if k != 'failures'} }")
    assert total["failures"] == []  # "plain": conflicts were TransactionConflictError, nothing else
    if mode == "retrying":
        assert total["conflicts"] == 0
    assert total["increments"] > 50, total
    for url in cluster_db:  # every node reads the same, complete result
        with Bridge(url) as bridge:
            bridge.bind(*MODELS)

            def settled(bridge: Bridge = bridge) -> bool:
                return bool(Counter.get_by_id("c").value == total["increments"])

            wait_for(settled, 30, f"the counter on {url}")
            assert Item.select().count() == total["inserted"]
            parents = Parent.select().count()
            assert parents == total["created"] - total["deleted"]
            assert Child.select().count() == CHILDREN * parents


def test_a_node_killed_mid_run_loses_nothing_and_writers_move_on(cluster_db: list[str]) -> None:
    # Four writers, each with a bridge that lists all three nodes (in different orders, so
    # two of them start on node 3). Node 3 is killed while they write, then restarted.
    from helpers import kill_galera_node, restart_galera_node

    name = cluster_db[0].rsplit("/", 1)[1]
    hosts = [u.split("@", 1)[1].split("/", 1)[0] for u in cluster_db]  # 127.0.0.1:1330N
    orders = [[2, 0, 1], [2, 1, 0], [0, 1, 2], [1, 0, 2]]
    urls = [f"mariadb://root@{','.join(hosts[i] for i in order)}/{name}" for order in orders]

    class Tally(maim_db.Model):
        n = peewee.IntegerField(default=0)

    with Bridge(cluster_db[0]) as setup:
        setup.bind(Tally)
        setup.create_tables()
        setup.peewee.execute_sql("INSERT INTO tally (id, n) VALUES (1, 0)")
    wait_for(lambda: url_rows(cluster_db[2], "SELECT n FROM tally") == [(0,)], 30, "replication")

    stop = threading.Event()
    killed = threading.Event()
    stats = [{"ok": 0, "after_kill": 0, "in_doubt": 0, "other": []} for _ in urls]

    def increment() -> None:
        Tally.update(n=Tally.n + 1).where(Tally.id == 1).execute()

    def writer(k: int) -> None:
        with Bridge(f"{urls[k]}?connect_timeout=2") as bridge:
            bridge.bind(Tally)
            while not stop.is_set():
                try:
                    bridge.run_transaction(increment)
                except maim_db.ConnectionLostError:
                    stats[k]["in_doubt"] += 1  # the node died under it: committed or not, unknown
                    continue
                except Exception as exc:
                    stats[k]["other"].append(repr(exc)[:200])
                    continue
                stats[k]["ok"] += 1
                if killed.is_set():
                    stats[k]["after_kill"] += 1
            bridge.peewee.close()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(len(urls))]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: all(s["ok"] >= 20 for s in stats), 60, "every writer committing")
        kill_galera_node(3)
        killed.set()
        wait_for(lambda: all(s["after_kill"] >= 20 for s in stats), 90, "every writer committing after the kill")
    finally:
        stop.set()
        for t in threads:
            t.join(120)
    try:
        assert not any(t.is_alive() for t in threads)
        assert [s["other"] for s in stats] == [[] for _ in stats]
        ok = sum(s["ok"] for s in stats)
        in_doubt = sum(s["in_doubt"] for s in stats)
        final = url_rows(cluster_db[0], "SELECT n FROM tally")[0][0]
        print(f"galera node kill: committed {ok}, in doubt {in_doubt}, counter {final}, per writer {stats}")
        assert isinstance(final, int) and ok <= final <= ok + in_doubt, (ok, in_doubt, final)
        assert url_rows(cluster_db[1], "SELECT n FROM tally") == [(final,)]
    finally:
        restart_galera_node(3)
    wait_for(lambda: url_rows(cluster_db[2], "SELECT n FROM tally") == [(final,)], 60, "node 3 caught up")
