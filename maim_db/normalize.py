"""Opt-in rewrite of stored values into the canonical form of :mod:`maim_db.codecs`.

Rows written by other tools (or by maim_db 1.0's SQLAlchemy side) may hold the same
value in another form: ``'2024-05-01T12:00:00'``, ``'...12:00:00.000000'``, JSON with
escaped non-ASCII, a decimal as REAL. Reads already understand all of them; ``=`` and
range filters only match the canonical form. :func:`normalize_values` rewrites such
values -- after writing a backup -- and reports what it changed. It never deletes a row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import peewee

from . import fields as maim_fields
from .backup import backup_path_for, backup_sqlite
from .codecs import SCALED_MAX_DIGITS, decimal_from_legacy
from .errors import ConfigurationError, InvalidValueError

if TYPE_CHECKING:
    from .bridge import Bridge

__all__ = ["NormalizeReport", "normalize_values"]

log = logging.getLogger("maim_db.normalize")

_CANONICAL = (
    maim_fields.DateTimeField,
    maim_fields.DateField,
    maim_fields.TimeField,
    maim_fields.DecimalField,
    maim_fields.JSONField,
    maim_fields.EnumField,
)


@dataclass
class NormalizeReport:
    """What :func:`normalize_values` found and changed."""

    dry_run: bool
    backup: Path | None = None
    changed: dict[str, int] = field(default_factory=dict)
    """``"table.column"`` -> rows rewritten (or that would be, in a dry run)."""
    examples: list[tuple[str, Any, Any, Any]] = field(default_factory=list)
    """Up to 20 ``("table.column", primary key, old, new)``."""
    unreadable: list[tuple[str, Any, Any]] = field(default_factory=list)
    """Values that do not parse as their field's type; left as they are."""

    @property
    def total(self) -> int:
        """Rows rewritten in all columns."""
        return sum(self.changed.values())


_META = "maim_db_meta"


def _legacy_conversions(db: Any) -> set[str]:
    """The ``table.column`` decimal columns whose legacy values were converted already."""
    if not db.execute_sql("SELECT 1 FROM sqlite_master WHERE name = ?", (_META,)).fetchone():
        return set()
    rows = db.execute_sql(f"SELECT key FROM {_META} WHERE key LIKE 'legacy_decimals:%'").fetchall()
    return {key.split(":", 1)[1] for (key,) in rows}


def _canonical(f: peewee.Field, raw: Any, legacy_decimals: bool, sqlite: bool) -> Any:
    """The canonical stored form of ``raw`` for field ``f``; raises InvalidValueError if unsure."""
    if isinstance(f, maim_fields.DecimalField) and sqlite:
        scaled = f.max_digits <= SCALED_MAX_DIGITS
        if legacy_decimals:
            return f.db_value(decimal_from_legacy(raw))
        if (scaled and not isinstance(raw, int)) or (not scaled and not isinstance(raw, str)):
            # REAL or text in a scaled column could be "units" or a plain number: never guess.
            raise InvalidValueError(
                f"{raw!r} is not in the stored form of {f.model.__name__}.{f.name}",
                hint="if the column held plain decimals (peewee.DecimalField), pass legacy_decimals=True",
            )
    return f.db_value(f.python_value(raw))  # type: ignore[no-untyped-call]


def normalize_values(
    bridge: Bridge, *, dry_run: bool = False, backup: bool = True, legacy_decimals: bool = False
) -> NormalizeReport:
    """Rewrite non-canonical values of the bound models' maim_db fields; see the module docstring.

    On SQLite a backup is written beside the database first (``backup=False`` skips it);
    on a server, pass ``backup=False`` after taking one with the server's tools.
    ``legacy_decimals=True`` reads every stored value of a ``DecimalField`` as a plain
    number -- for a column that used to be a ``peewee.DecimalField`` (REAL on SQLite).
    """
    report = NormalizeReport(dry_run=dry_run)
    db = bridge.peewee
    converted = _legacy_conversions(db) if legacy_decimals and bridge.url.is_sqlite else set()
    plan: list[tuple[type[peewee.Model], peewee.Field, peewee.Field, list[tuple[Any, Any, Any]]]] = []
    for model in bridge.models:
        pk = model._meta.primary_key
        if not isinstance(pk, peewee.Field) or isinstance(pk, peewee.CompositeKey):
            continue
        table = model._meta.table_name
        for f in model._meta.sorted_fields:
            if not isinstance(f, _CANONICAL):
                continue
            changes: list[tuple[Any, Any, Any]] = []
            where = f"{table}.{f.column_name}"
            if isinstance(f, maim_fields.DecimalField) and where in converted:
                # Scaled integers read as plain decimals again would be multiplied again.
                raise InvalidValueError(
                    f"the legacy decimals of {where} were converted already",
                    hint="run normalize_values() without legacy_decimals=True (nothing was changed)",
                )
            sql = f'SELECT "{pk.column_name}", "{f.column_name}" FROM "{table}" WHERE "{f.column_name}" IS NOT NULL'
            if bridge.url.backend == "mysql":  # MySQL reads "name" as a string, not a name
                sql = sql.replace('"', "`")
            for key, raw in db.execute_sql(sql).fetchall():
                try:
                    canonical = _canonical(f, raw, legacy_decimals, bridge.url.is_sqlite)
                except InvalidValueError:
                    report.unreadable.append((f"{table}.{f.column_name}", key, raw))
                    continue
                if canonical != raw or type(canonical) is not type(raw):
                    changes.append((key, raw, canonical))
            if changes:
                plan.append((model, pk, f, changes))
                report.changed[f"{table}.{f.column_name}"] = len(changes)
                for key, old, new in changes:
                    if len(report.examples) < 20:
                        report.examples.append((f"{table}.{f.column_name}", key, old, new))
    if dry_run or not plan:
        return report
    if backup:
        if not bridge.url.is_sqlite or bridge.url.path is None:
            raise ConfigurationError(
                "normalize_values() backs up SQLite files only",
                hint="back the server database up with its own tools, then pass backup=False",
            )
        report.backup = backup_sqlite(bridge, backup_path_for(bridge.url.path, "before-normalize"))
        log.info("backup written to %s", report.backup)
    with db.atomic():
        for model, pk, f, changes in plan:
            sql = f'UPDATE "{model._meta.table_name}" SET "{f.column_name}" = ? WHERE "{pk.column_name}" = ?'
            if not bridge.url.is_sqlite:
                sql = sql.replace('"', "`" if bridge.url.backend == "mysql" else '"').replace("?", "%s")
            for key, _old, new in changes:
                db.execute_sql(sql, (new, key))
        if legacy_decimals and bridge.url.is_sqlite:
            db.execute_sql(f"CREATE TABLE IF NOT EXISTS {_META} (key TEXT PRIMARY KEY, value TEXT)")
            for model in bridge.models:
                for f in model._meta.sorted_fields:
                    if isinstance(f, maim_fields.DecimalField):
                        db.execute_sql(
                            f"INSERT OR IGNORE INTO {_META} (key, value) VALUES (?, datetime('now'))",
                            (f"legacy_decimals:{model._meta.table_name}.{f.column_name}",),
                        )
    log.info("normalized %d value(s) in %d column(s)", report.total, len(report.changed))
    return report
