"""maim_db on a 3-node MariaDB Galera cluster (``python3 dev.py services up``).

No database-wide lock (GET_LOCK is node-local on Galera, so the opt-in writer lock is
refused): write transactions run SERIALIZABLE on their node, Galera's certification rejects
the loser of a conflict between nodes at commit, and that surfaces as
TransactionConflictError, which the retrying APIs run again.
"""

from __future__ import annotations

import multiprocessing as mp
import secrets
from collections.abc import Iterator
from typing import Any

import peewee
import pytest
import sqlalchemy as sa
from helpers import url_rows, wait_for
from procs import CHILDREN, MODELS, Child, Counter, Item, Parent, bot, prepare, service

import maim_db
from maim_db import Bridge

pytestmark = pytest.mark.slow
SPAWN = mp.get_context("spawn")


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
    targets: list[tuple[Any, tuple[Any, ...]]] = [(bot, (urls[n % 3], n, mode)) for n in range(3)]
    targets += [(service, (urls[(n + 1) % 3], 10 + n, mode)) for n in range(3)]
    barrier = SPAWN.Barrier(len(targets))
    results = SPAWN.Queue()
    procs = [SPAWN.Process(target=fn, args=(args[0], seconds, barrier, results, *args[1:])) for fn, args in targets]
    for p in procs:
        p.start()
    try:
        outs = [results.get(timeout=seconds + 240) for _ in procs]
    finally:
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
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
