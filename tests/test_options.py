"""Every maim_db option has a finite, documented range, checked where the URL is parsed."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from maim_db import Bridge, ConfigurationError, DatabaseURL
from maim_db.servers import server_options
from maim_db.sqlite import SQLiteProfile
from maim_db.url import check_option

DAY_MS = 86_400_000


def _refused(url: str) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as err:
        DatabaseURL.parse(url)
    return err.value


def test_busy_timeout_beyond_a_day_is_refused_at_parse(tmp_path: Path) -> None:
    # It used to be accepted: the first contended wait raised OverflowError (leaking the
    # queue turn) and SQLite's own busy timeout was silently off.
    err = _refused(f"sqlite:///{tmp_path}/x.db?busy_timeout=99999999999999")
    assert "busy_timeout='99999999999999'" in err.message
    assert "from 0 to 86400000" in err.message
    assert err.hint == "write for example ?busy_timeout=5000"
    with pytest.raises(ConfigurationError, match="busy_timeout"):
        Bridge(f"sqlite:///{tmp_path}/x.db?busy_timeout=99999999999999")
    assert list(tmp_path.iterdir()) == []


def test_the_largest_busy_timeout_fits_every_wait_that_uses_it(tmp_path: Path) -> None:
    # The thread waits take seconds (threading.TIMEOUT_MAX), SQLite an int of milliseconds.
    assert DAY_MS / 1000 < threading.TIMEOUT_MAX
    assert DAY_MS < 2**31 - 1
    with Bridge(f"sqlite:///{tmp_path}/x.db?busy_timeout={DAY_MS}") as b:
        assert b.peewee.execute_sql("PRAGMA busy_timeout").fetchone() == (DAY_MS,)
        with b.sync_engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == DAY_MS
    # and sqlite3's own timeout argument takes it without OverflowError
    sqlite3.connect(tmp_path / "y.db", timeout=DAY_MS / 1000).close()


def test_a_profile_override_gets_the_same_range(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as err:
        Bridge(tmp_path / "x.db", profile={"busy_timeout": 10**14})
    assert "busy_timeout=100000000000000" in err.value.message and "86400000" in err.value.message
    assert err.value.hint == "use for example busy_timeout=5000"
    with pytest.raises(ConfigurationError, match="checkpoint_interval"):
        SQLiteProfile(checkpoint_interval=float("inf"))._validate()
    with pytest.raises(ConfigurationError, match="checkpoint_interval"):
        SQLiteProfile.from_options({"checkpoint_interval": "nan"})
    assert list(tmp_path.iterdir()) == []


def test_sqlite_timeout_inf_is_a_configuration_error_not_an_overflow() -> None:
    err = _refused("sqlite:///x.db?timeout=inf")
    assert "timeout='inf'" in err.message and "86400" in err.message
    assert err.hint == "write for example ?timeout=5"


def test_a_timeout_that_would_round_to_no_wait_is_refused() -> None:
    assert "timeout='0.0004'" in _refused("sqlite:///x.db?timeout=0.0004").message
    assert DatabaseURL.parse("sqlite:///x.db?timeout=0").option_map == {"busy_timeout": "0"}
    assert DatabaseURL.parse("sqlite:///x.db?timeout=0.001").option_map == {"busy_timeout": "1"}


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e9", "-1", "0.001", "1e400"])
def test_checkpoint_interval_must_be_finite_and_sensible(value: str) -> None:
    # inf used to be accepted and killed the checkpointer thread on its first wait.
    err = _refused(f"sqlite:///x.db?checkpoint_interval={value}")
    assert f"checkpoint_interval={value!r}" in err.message
    assert "0 (off) or a number of seconds from 0.01 to 86400 (24 h)" in err.message
    assert err.hint == "write for example ?checkpoint_interval=1"


def test_checkpoint_interval_zero_still_turns_the_checkpointer_off() -> None:
    assert DatabaseURL.parse("sqlite:///x.db?checkpoint_interval=0").option_map == {"checkpoint_interval": "0"}
    assert DatabaseURL.parse("sqlite:///x.db?checkpoint_interval=0.01").option_map == {"checkpoint_interval": "0.01"}


@pytest.mark.parametrize(
    ("url", "option", "needle"),
    [
        ("sqlite:///x.db?slow_query_ms=inf", "slow_query_ms", "from 0 to 86400000"),
        ("sqlite:///x.db?slow_query_ms=nan", "slow_query_ms", "from 0 to 86400000"),
        ("sqlite:///x.db?checkpoint_stall_ms=99999999999", "checkpoint_stall_ms", "from 0 to 86400000"),
        ("sqlite:///x.db?cache_size=99999999999", "cache_size", "2147483647"),
        ("sqlite:///x.db?wal_autocheckpoint=4294967296", "wal_autocheckpoint", "2147483647"),
        ("sqlite:///x.db?mmap_size=99999999999999999999", "mmap_size", "9223372036854775807"),
        ("sqlite:///x.db?busy_timeout=1_000", "busy_timeout", "whole number"),
        ("sqlite:///x.db?busy_timeout=\uff15", "busy_timeout", "whole number"),  # a full-width digit
        ("sqlite:///x.db?busy_timeout=" + "9" * 5000, "busy_timeout", "whole number"),
        ("postgresql://h/db?connect_timeout=inf", "connect_timeout", "from 0.001 to 86400"),
        ("postgresql://h/db?connect_timeout=nan", "connect_timeout", "from 0.001 to 86400"),
        ("postgresql://h/db?lock_timeout=inf", "lock_timeout", "from 0.001 to 86400"),
        ("postgresql://h/db?pool_timeout=inf", "pool_timeout", "from 0.001 to 86400"),
        ("postgresql://h/db?pool_timeout=1e-9", "pool_timeout", "from 0.001 to 86400"),
        ("mysql://h/db?lock_timeout=inf", "lock_timeout", "from 0.001 to 86400"),
        ("mysql://h/db?lock_timeout=1e300", "lock_timeout", "from 0.001 to 86400"),
        ("mariadb://h/db?lock_timeout=86401", "lock_timeout", "from 0.001 to 86400"),
        ("postgresql://h/db?pool_recycle=99999999999999999999", "pool_recycle", "31536000"),
        ("postgresql://h/db?pool_size=1000000000", "pool_size", "from 1 to 10000"),
        ("postgresql://h/db?max_overflow=1000000000", "max_overflow", "from 0 to 10000"),
        ("postgresql://h/db?slow_query_ms=inf", "slow_query_ms", "from 0 to 86400000"),
    ],
)
def test_out_of_range_options_name_option_value_range_and_fix(url: str, option: str, needle: str) -> None:
    err = _refused(url)
    assert f"URL option {option}=" in err.message
    assert needle in err.message
    assert err.hint is not None and err.hint.startswith(f"write for example ?{option}=")
    assert len(str(err)) < 400  # no 300-digit numbers echoed back from a driver


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@127.0.0.1/db?connect_timeout=inf",
        "postgresql://u@127.0.0.1/db?lock_timeout=inf",
        "mysql://u@127.0.0.1/db?lock_timeout=inf",
        "mysql://u@127.0.0.1/db?lock_timeout=1e300",
    ],
)
def test_a_server_bridge_refuses_bad_timeouts_when_made(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"from 0\.001 to 86400"):
        Bridge(url)


def test_server_options_checks_a_url_that_was_built_without_parse() -> None:
    u = DatabaseURL(backend="mysql", family="mysql", host="h", database="db", options=(("lock_timeout", "1e300"),))
    with pytest.raises(ConfigurationError, match=r"lock_timeout='1e300'.*from 0\.001 to 86400"):
        server_options(u)
    ok = DatabaseURL.parse("mysql://h/db?lock_timeout=0.5&pool_recycle=-1&connect_timeout=86400")
    opts = server_options(ok)
    assert (opts["lock_timeout"], opts["pool_recycle"], opts["connect_timeout"]) == (0.5, -1, 86400.0)


def test_negative_zero_is_zero() -> None:
    u = DatabaseURL.parse("sqlite:///x.db?busy_timeout=-0&checkpoint_interval=-0.0&slow_query_ms=-0")
    assert u.option_map == {"busy_timeout": "0", "checkpoint_interval": "0", "slow_query_ms": "0"}
    assert DatabaseURL.parse(str(u)) == u
    assert "more than 0 seconds" in _refused("postgresql://h/db?lock_timeout=-0.0").message


def test_check_option_returns_the_canonical_text() -> None:
    assert check_option("lock_timeout", "1e-3") == "0.001"
    assert check_option("connect_timeout", "10.0") == "10"
    assert check_option("busy_timeout", " 250 ") == "250"
    assert check_option("busy_timeout", 250) == check_option("busy_timeout", 250.0) == "250"
    assert check_option("checkpoint_interval", 0.05) == "0.05"
    with pytest.raises(ConfigurationError, match="unknown option"):
        check_option("busy_timout", "1")


def test_cli_prints_a_bad_option_as_an_error_line_not_a_traceback(tmp_path: Path) -> None:
    target = tmp_path / "x.db"
    done = subprocess.run(
        [sys.executable, "-m", "maim_db.cli", "info", "--url", f"sqlite:///{target}?timeout=inf"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    first, *rest = done.stderr.strip().splitlines()
    assert first.startswith("maim-db: error: URL option timeout='inf'")
    assert rest == ["  fix: write for example ?timeout=5"]
    assert not target.exists()
