"""Schema drift: where the Peewee models, their mirrors and the live database disagree.

Each of the three is reduced to the same description per table -- columns (type family,
length, nullability), primary key, indexes (columns and uniqueness; names are reported
but not compared), foreign keys (columns, target, ON DELETE) -- and the descriptions are
compared: Peewee vs mirror, then Peewee vs the database. Type families follow what the
backend stores: on SQLite ``BOOLEAN`` and ``INTEGER`` are one family and lengths are not
enforced (so not compared), but ``JSON`` (NUMERIC affinity) and ``TEXT`` differ.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import peewee
import sqlalchemy as sa

from .sqlalchemy.mirror import mirrors_for
from .url import DatabaseURL

__all__ = ["ColumnShape", "SchemaOwner", "TableShape", "compare", "declared_length", "schema_drift", "type_family"]


def type_family(declared: str) -> str:
    """A declared column type reduced to what the backend stores (``VARCHAR(50)`` -> ``text``)."""
    t = declared.upper()
    if "BOOL" in t or "INT" in t or "SERIAL" in t:
        return "integer"
    if "UUID" in t:
        return "uuid"
    if "JSON" in t:
        return "json"
    if "DATETIME" in t or "TIMESTAMP" in t:
        return "datetime"
    if "DATE" in t:
        return "date"
    if "TIME" in t:
        return "time"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "text"
    if "BLOB" in t or "BYTEA" in t or "BINARY" in t:
        return "blob"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "real"
    if "DEC" in t or "NUMERIC" in t:
        return "numeric"
    return t.split("(")[0].strip().lower() or "untyped"


def declared_length(declared: str) -> int | None:
    """The length of a declared text type (``VARCHAR(255)`` -> 255), else None."""
    m = re.search(r"\((\d+)", declared)
    return int(m.group(1)) if m and type_family(declared) == "text" else None


@dataclass(frozen=True)
class ColumnShape:
    """One column as the comparison sees it."""

    name: str
    declared: str
    nullable: bool

    @property
    def family(self) -> str:
        """The type family (see :func:`type_family`)."""
        return type_family(self.declared)


@dataclass
class TableShape:
    """One table as the comparison sees it."""

    name: str
    columns: dict[str, ColumnShape] = field(default_factory=dict)
    primary_key: tuple[str, ...] = ()
    indexes: dict[tuple[tuple[str, ...], bool], str] = field(default_factory=dict)
    foreign_keys: set[tuple[tuple[str, ...], str, tuple[str, ...], str]] = field(default_factory=set)


def _on_delete(value: str | None) -> str:
    return (value or "NO ACTION").upper()


# -- the three sources --------------------------------------------------------------------


def from_peewee(model: type[peewee.Model], db: Any) -> TableShape:
    """What the Peewee model says the table is."""
    meta = model._meta
    shape = TableShape(meta.table_name)
    ctx = db.get_sql_context()
    for f in meta.sorted_fields:
        node = f.ddl_datatype(ctx)
        declared = db.get_sql_context().sql(node).query()[0] if node is not None else ""
        shape.columns[f.column_name] = ColumnShape(f.column_name, declared, bool(f.null))
    pk = meta.primary_key
    if isinstance(pk, peewee.CompositeKey):
        shape.primary_key = tuple(meta.fields[n].column_name for n in pk.field_names)
    elif pk:
        shape.primary_key = (pk.column_name,)
    for index in meta.fields_to_index():
        cols = tuple(
            e.column_name if isinstance(e, peewee.Field) else str(getattr(e, "sql", e)) for e in index._expressions
        )
        shape.indexes[(cols, bool(index._unique))] = index._name
    for f in meta.sorted_fields:
        if isinstance(f, peewee.ForeignKeyField):
            shape.foreign_keys.add(
                ((f.column_name,), f.rel_model._meta.table_name, (f.rel_field.column_name,), _on_delete(f.on_delete))
            )
    return shape


def from_table(table: Any, dialect: sa.Dialect) -> TableShape:
    """What a SQLAlchemy Table (a mirror's) says the table is."""
    shape = TableShape(table.name)
    compiler = dialect.type_compiler_instance
    for col in table.columns:
        shape.columns[col.name] = ColumnShape(col.name, compiler.process(col.type), bool(col.nullable))
    shape.primary_key = tuple(c.name for c in table.primary_key.columns)
    for index in table.indexes:
        cols = tuple(getattr(e, "name", str(e)) for e in index.expressions)
        shape.indexes[(cols, bool(index.unique))] = str(index.name)
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint) and not isinstance(constraint, sa.PrimaryKeyConstraint):
            shape.indexes[(tuple(c.name for c in constraint.columns), True)] = str(constraint.name or "unique")
    for fkc in table.foreign_key_constraints:
        shape.foreign_keys.add(
            (
                tuple(c.name for c in fkc.columns),
                fkc.referred_table.name,
                tuple(e.column.name for e in fkc.elements),
                _on_delete(fkc.ondelete),
            )
        )
    return shape


def from_sqlite(db: Any, table: str) -> TableShape | None:
    """What the live SQLite database says (PRAGMA, so any declared type reads as written)."""
    q = table.replace('"', '""')
    rows = db.execute_sql(f'PRAGMA table_info("{q}")').fetchall()
    if not rows:
        return None
    shape = TableShape(table)
    pk: list[tuple[int, str]] = []
    for _cid, name, declared, notnull, _default, pk_pos in rows:
        shape.columns[name] = ColumnShape(name, declared or "", not notnull and not pk_pos)
        if pk_pos:
            pk.append((pk_pos, name))
    shape.primary_key = tuple(n for _, n in sorted(pk))
    for _seq, name, unique, origin, _partial in db.execute_sql(f'PRAGMA index_list("{q}")').fetchall():
        if origin == "pk":
            continue
        cols = tuple(r[2] for r in db.execute_sql(f'PRAGMA index_info("{name}")').fetchall())
        shape.indexes[(cols, bool(unique))] = name
    fks: dict[int, list[Any]] = {}
    for fk_id, _seq, target, src, dst, _upd, on_delete, _match in db.execute_sql(
        f'PRAGMA foreign_key_list("{q}")'
    ).fetchall():
        fks.setdefault(fk_id, [target, [], [], on_delete])
        fks[fk_id][1].append(src)
        fks[fk_id][2].append(dst)
    for target, srcs, dsts, on_delete in fks.values():
        shape.foreign_keys.add((tuple(srcs), target, tuple(dsts), _on_delete(on_delete)))
    return shape


def from_inspector(inspector: Any, table: str, dialect: sa.Dialect) -> TableShape | None:
    """What a live server database says, through SQLAlchemy's inspector."""
    if not inspector.has_table(table):
        return None
    shape = TableShape(table)
    compiler = dialect.type_compiler_instance
    json_columns = _mariadb_json_columns(inspector, table) if getattr(dialect, "is_mariadb", False) else set()
    for col in inspector.get_columns(table):
        declared = "JSON" if col["name"] in json_columns else compiler.process(col["type"])
        shape.columns[col["name"]] = ColumnShape(col["name"], declared, bool(col["nullable"]))
    shape.primary_key = tuple(inspector.get_pk_constraint(table).get("constrained_columns") or ())
    for index in inspector.get_indexes(table):
        shape.indexes[(tuple(index["column_names"]), bool(index["unique"]))] = index["name"]
    for uc in inspector.get_unique_constraints(table):
        shape.indexes.setdefault((tuple(uc["column_names"]), True), uc["name"])
    for fk in inspector.get_foreign_keys(table):
        shape.foreign_keys.add(
            (
                tuple(fk["constrained_columns"]),
                fk["referred_table"],
                tuple(fk["referred_columns"]),
                _on_delete((fk.get("options") or {}).get("ondelete")),
            )
        )
    return shape


_JSON_VALID = re.compile(r"^\s*json_valid\(`((?:[^`]|``)+)`\)\s*$", re.IGNORECASE)


def _mariadb_json_columns(inspector: Any, table: str) -> set[str]:
    """MariaDB's JSON is LONGTEXT with ``CHECK (json_valid(col))``; reflection sees only LONGTEXT."""
    sql = sa.text(
        "SELECT check_clause FROM information_schema.check_constraints"
        " WHERE constraint_schema = DATABASE() AND table_name = :table"
    )
    bind = inspector.bind
    if isinstance(bind, sa.Engine):
        with bind.connect() as conn:
            clauses = list(conn.execute(sql, {"table": table}).scalars())
    else:
        clauses = list(bind.execute(sql, {"table": table}).scalars())
    return {m.group(1).replace("``", "`") for c in clauses if (m := _JSON_VALID.match(str(c)))}


# -- comparison -----------------------------------------------------------------------------


def _cols(cols: Iterable[str]) -> str:
    return ", ".join(cols)


def _fk(fk: tuple[tuple[str, ...], str, tuple[str, ...], str]) -> str:
    return f"foreign key ({_cols(fk[0])}) -> {fk[1]}({_cols(fk[2])}) ON DELETE {fk[3]}"


def compare(expected: TableShape, actual: TableShape, want: str, have: str, *, lengths: bool) -> list[str]:
    """Human-readable differences between two descriptions of one table."""
    out: list[str] = []
    t = expected.name
    for name, col in expected.columns.items():
        other = actual.columns.get(name)
        if other is None:
            out.append(f"{t}.{name}: column is in {want} but missing in {have}")
            continue
        if col.family != other.family:
            out.append(
                f"{t}.{name}: type {col.declared or 'untyped'} ({col.family}) in {want}, "
                f"{other.declared or 'untyped'} ({other.family}) in {have}"
            )
        elif lengths and declared_length(col.declared) != declared_length(other.declared):
            out.append(f"{t}.{name}: type {col.declared} in {want}, {other.declared} in {have}")
        if col.nullable != other.nullable:
            word = {True: "NULL", False: "NOT NULL"}
            out.append(f"{t}.{name}: {word[col.nullable]} in {want}, {word[other.nullable]} in {have}")
    for name in actual.columns.keys() - expected.columns.keys():
        out.append(f"{t}.{name}: column is in {have} but not in {want}")
    if expected.primary_key != actual.primary_key:
        out.append(
            f"{t}: primary key ({_cols(expected.primary_key)}) in {want}, ({_cols(actual.primary_key)}) in {have}"
        )
    for key, name in expected.indexes.items():
        if key not in actual.indexes:
            kind = "unique index" if key[1] else "index"
            out.append(f"{t}: {kind} {name} on ({_cols(key[0])}) is in {want} but missing in {have}")
    for key, name in actual.indexes.items():
        if key not in expected.indexes:
            kind = "unique index" if key[1] else "index"
            out.append(f"{t}: {kind} {name} on ({_cols(key[0])}) is in {have} but not in {want}")
    for fk in sorted(expected.foreign_keys - actual.foreign_keys):
        out.append(f"{t}: {_fk(fk)} is in {want} but missing in {have}")
    for fk in sorted(actual.foreign_keys - expected.foreign_keys):
        out.append(f"{t}: {_fk(fk)} is in {have} but not in {want}")
    return out


class SchemaOwner(Protocol):
    """What :func:`schema_drift` reads of a bridge: its URL, models, Peewee database and engine."""

    @property
    def url(self) -> DatabaseURL: ...  # noqa: D102
    @property
    def models(self) -> tuple[type[peewee.Model], ...]: ...  # noqa: D102
    @property
    def peewee(self) -> Any: ...  # noqa: D102
    @property
    def sync_engine(self) -> sa.Engine: ...  # noqa: D102


_IGNORED_TABLES = frozenset({"alembic_version", "sqlite_sequence", "sqlite_stat1", "sqlite_stat4"})


def schema_drift(bridge: SchemaOwner, *, live: Any = None) -> list[str]:
    """Differences between the bridge's bound models, their mirrors and the live database.

    ``live`` (SQLite): an object whose ``execute_sql`` reads the live schema instead of
    ``bridge.peewee`` -- ``maim-db check`` passes a read-only connection.
    """
    db = bridge.peewee
    live_db = db if live is None else live
    models = list(bridge.models)
    mirrors = dict(zip(models, mirrors_for(bridge).mirror_all(models), strict=True))  # the bridge's own
    dialect = bridge.sync_engine.dialect
    sqlite = bridge.url.is_sqlite
    out: list[str] = []
    inspector = None if sqlite else sa.inspect(bridge.sync_engine)
    for model in models:
        name = model._meta.table_name
        expected = from_peewee(model, db)
        mirror_shape = from_table(mirrors[model].__table__, dialect)
        out += compare(
            expected, mirror_shape, f"the Peewee model {model.__name__}", "its SQLAlchemy mirror", lengths=not sqlite
        )
        found = from_sqlite(live_db, name) if sqlite else from_inspector(inspector, name, dialect)
        if found is None:
            out.append(f"{name}: table of the Peewee model {model.__name__} is missing in the database")
            continue
        out += compare(expected, found, f"the Peewee model {model.__name__}", "the database", lengths=not sqlite)
    known = {m._meta.table_name for m in models}
    live_tables = (
        [r[0] for r in live_db.execute_sql("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()]
        if sqlite
        else list(inspector.get_table_names())  # type: ignore[union-attr]
    )
    for table in sorted(set(live_tables) - known - _IGNORED_TABLES):
        if not table.startswith("sqlite_"):
            out.append(f"{table}: table is in the database but no bound model describes it")
    return out
