"""Persisted long-running operations (the google.longrunning.Operation model, without grpc).

The store sits behind a small interface keyed by a database URL. ``sqlite:///path`` is the
embedded default (``make demo`` needs no database server); ``postgresql://…`` (psycopg 3) is the
one several replicas of a service share. Both run the same SQL (SqlOperationStore), so they have
the same semantics, and the same tests run against both (tests/unit/test_operations.py).

Work is claimed with leases: a replica that runs an operation is its ``owner`` until
``lease_until``, renews the lease while it works (services.common.jobs), and every write it makes
names itself (``held_by``) — a write from a replica whose lease another one has taken is refused
(LeaseLost), so one operation is never written by two replicas. A lease that runs out (the replica
died) makes the operation claimable by any replica of the service, which resumes it from what was
written. A claim is one conditional UPDATE, atomic in both databases: of two replicas claiming at
once, one wins.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from services.common.errors import InvalidArgument, LeaseLost, NotFound, Unavailable

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})


@dataclass
class OperationRecord:
    name: str
    service: str
    kind: str
    state: str
    request: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    request_id: str | None = None
    create_time: float = 0.0
    update_time: float = 0.0
    cancel_requested: bool = False
    owner: str | None = None  # the replica running it, while its lease lasts
    lease_until: float | None = None

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @property
    def short_id(self) -> str:
        return self.name.rsplit("/", 1)[-1]


class OperationStore(Protocol):
    shared: bool  # several processes (replicas) use this store: leases decide who runs what

    def create(self, service: str, kind: str, request: dict[str, Any], request_id: str | None = None) -> tuple[OperationRecord, bool]: ...
    def get(self, name: str) -> OperationRecord: ...
    def list(self, service: str | None = None, states: frozenset[str] | None = None, limit: int = 100, offset: int = 0) -> list[OperationRecord]: ...
    def update(self, name: str, held_by: str | None = None, **fields: Any) -> OperationRecord: ...
    def claim(self, name: str, owner: str, lease_seconds: float, force: bool = False) -> bool: ...
    def renew(self, name: str, owner: str, lease_seconds: float) -> bool: ...
    def release(self, name: str, owner: str) -> None: ...
    def claimable(self, service: str) -> list[OperationRecord]: ...
    def request_cancel(self, name: str) -> OperationRecord: ...
    def delete(self, name: str) -> None: ...
    def version(self) -> int: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    name TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    request TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{{}}',
    result TEXT,
    error_code TEXT,
    error_message TEXT,
    request_id TEXT,
    create_time {real} NOT NULL,
    update_time {real} NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    lease_until {real}
);
CREATE UNIQUE INDEX IF NOT EXISTS operations_request_id ON operations(service, request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS operations_state ON operations(state)
"""

# Job kinds renamed so that every service names its jobs by the noun of its work (generation,
# validation, training, evaluation, export): records written before the rename are migrated when a
# store opens, so an unfinished "train" job resumes as a "training" job and its result still maps.
RENAMED_KINDS: dict[tuple[str, str], str] = {("trainer", "train"): "training", ("evaluator", "evaluate"): "evaluation"}

_JSON_FIELDS = ("request", "metadata", "result")
_COLUMNS = ("name", "service", "kind", "state", "request", "metadata", "result", "error_code",
            "error_message", "request_id", "create_time", "update_time", "cancel_requested", "owner", "lease_until")
# Columns added after the first release: a store written before gets them when it opens.
_ADDED_COLUMNS = {"owner": "TEXT", "lease_until": "{real}"}
_UNFINISHED = f"state IN ('{PENDING}', '{RUNNING}')"
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM operations"


class SqlOperationStore(ABC):
    """The store's semantics in SQL both databases speak; a subclass supplies the connection and
    its placeholder style (``?`` for sqlite3, ``%s`` for psycopg) and the change counter."""

    placeholder = "?"

    def __init__(self) -> None:
        self._lock = threading.RLock()

    # ----- what a database implementation supplies ---------------------------------------------
    @abstractmethod
    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        """Run one statement on the database's connection; returns its cursor."""

    @abstractmethod
    def version(self) -> int:
        """Changes whenever any process commits a change (cheap polling for watchers)."""

    @abstractmethod
    def _column_names(self) -> set[str]:
        """The operations table's columns as the database has them (for migrations)."""

    real_type = "REAL"
    # Whether several processes share this store (and so need leases to split the work).
    shared = False

    # ----- shared -------------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        with self._lock:
            return self._execute(self._sql(sql), args)

    def _migrate(self) -> None:
        present = self._column_names()
        for column, sql_type in _ADDED_COLUMNS.items():
            if column not in present:
                self._run(f"ALTER TABLE operations ADD COLUMN {column} {sql_type.format(real=self.real_type)}")
        for (service, old), new in RENAMED_KINDS.items():
            self._run("UPDATE operations SET kind = ? WHERE service = ? AND kind = ?", (new, service, old))

    def _row(self, row: tuple[Any, ...]) -> OperationRecord:
        data = dict(zip(_COLUMNS, row))
        for key in _JSON_FIELDS:
            data[key] = json.loads(data[key]) if data[key] is not None else None
        data["cancel_requested"] = bool(data["cancel_requested"])
        return OperationRecord(**data)

    def create(self, service: str, kind: str, request: dict[str, Any], request_id: str | None = None) -> tuple[OperationRecord, bool]:
        """Create an operation; with a request_id already seen, return that one (created=False).
        Safe across processes and replicas: the unique (service, request_id) index decides, so two
        replicas starting the same request at once create one operation."""
        now = time.time()
        name = f"{service}/operations/{uuid.uuid4().hex[:16]}"
        record = OperationRecord(name=name, service=service, kind=kind, state=PENDING, request=request,
                                 metadata={"state": PENDING}, request_id=request_id or None,
                                 create_time=now, update_time=now)
        with self._lock:
            cur = self._run(
                f"INSERT INTO operations ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
                "ON CONFLICT DO NOTHING",
                (record.name, service, kind, PENDING, json.dumps(request), json.dumps(record.metadata), None,
                 None, None, record.request_id, now, now, 0, None, None))
            if cur.rowcount == 1:
                return record, True
            row = self._run(f"{_SELECT} WHERE service=? AND request_id=?", (service, request_id)).fetchone()
        if row is None:  # pragma: no cover - a conflict on the uuid name itself
            raise InvalidArgument(f"could not create an operation for {service} (name collision)")
        return self._row(row), False

    def get(self, name: str) -> OperationRecord:
        row = self._run(f"{_SELECT} WHERE name=?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"operation {name!r} not found")
        return self._row(row)

    def list(self, service: str | None = None, states: frozenset[str] | None = None, limit: int = 100, offset: int = 0) -> list[OperationRecord]:
        query, args = f"{_SELECT} WHERE 1=1", []
        if service:
            query += " AND service=?"
            args.append(service)
        if states:
            query += f" AND state IN ({', '.join('?' * len(states))})"
            args.extend(sorted(states))
        query += " ORDER BY create_time DESC LIMIT ? OFFSET ?"
        args.extend([limit, offset])
        return [self._row(row) for row in self._run(query, tuple(args)).fetchall()]

    def update(self, name: str, held_by: str | None = None, **fields: Any) -> OperationRecord:
        """Write fields of an operation. ``held_by``: only while that owner holds it (LeaseLost
        when another replica has taken it over)."""
        unknown = set(fields) - set(_COLUMNS)
        if unknown:
            raise InvalidArgument(f"unknown operation fields {sorted(unknown)}")
        fields["update_time"] = time.time()
        values = [json.dumps(v) if k in _JSON_FIELDS and v is not None else v for k, v in fields.items()]
        where, args = "name=?", [name]
        if held_by is not None:
            where += " AND owner=?"
            args.append(held_by)
        with self._lock:
            cur = self._run(f"UPDATE operations SET {', '.join(f'{k}=?' for k in fields)} WHERE {where}",
                            (*values, *args))
            if cur.rowcount == 0:
                record = self.get(name)  # NotFound when it does not exist at all
                raise LeaseLost(f"operation {name} is held by {record.owner or 'no one'}, not {held_by}")
            return self.get(name)

    # ----- leases -----------------------------------------------------------------------------
    def claim(self, name: str, owner: str, lease_seconds: float, force: bool = False) -> bool:
        """Take an unfinished operation for ``owner`` until now + lease_seconds: when no one holds
        it, its lease ran out, or ``owner`` holds it already (``force``: whoever holds it — the
        one process of an unshared store taking back what its dead predecessor held)."""
        now = time.time()
        condition = "" if force else " AND (owner IS NULL OR owner=? OR lease_until IS NULL OR lease_until < ?)"
        args: tuple[Any, ...] = (owner, now + lease_seconds, name) + (() if force else (owner, now))
        cur = self._run(f"UPDATE operations SET owner=?, lease_until=? WHERE name=? AND {_UNFINISHED}{condition}",
                        args)
        return cur.rowcount == 1

    def renew(self, name: str, owner: str, lease_seconds: float) -> bool:
        """Extend ``owner``'s lease; False when it no longer holds the operation."""
        cur = self._run("UPDATE operations SET lease_until=? WHERE name=? AND owner=?",
                        (time.time() + lease_seconds, name, owner))
        return cur.rowcount == 1

    def release(self, name: str, owner: str) -> None:
        """Give the operation up (finished, or this replica is stopping): claimable at once."""
        self._run("UPDATE operations SET owner=NULL, lease_until=NULL WHERE name=? AND owner=?", (name, owner))

    def claimable(self, service: str) -> list[OperationRecord]:
        """The service's unfinished operations that no live lease holds, oldest first."""
        rows = self._run(f"{_SELECT} WHERE service=? AND {_UNFINISHED} AND (owner IS NULL OR lease_until IS NULL "
                         "OR lease_until < ?) ORDER BY create_time", (service, time.time())).fetchall()
        return [self._row(row) for row in rows]

    def request_cancel(self, name: str) -> OperationRecord:
        record = self.get(name)
        if record.done:
            return record
        return self.update(name, cancel_requested=1)

    def delete(self, name: str) -> None:
        cur = self._run("DELETE FROM operations WHERE name=?", (name,))
        if cur.rowcount == 0:
            raise NotFound(f"operation {name!r} not found")


class SqliteOperationStore(SqlOperationStore):
    """SQLite in WAL mode; safe for the threads of one process and for readers in others."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            # The table first, then the columns a store from an older version lacks, then the indexes.
            table, _, indexes = _SCHEMA.format(real=self.real_type).partition(");")
            self._conn.executescript(table + ");")
            self._migrate()
            self._conn.executescript(indexes)

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        return self._conn.execute(sql, args)

    def _column_names(self) -> set[str]:
        return {row[1] for row in self._conn.execute("PRAGMA table_info(operations)").fetchall()}

    def version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0]) + int(
                self._conn.execute("SELECT COALESCE(MAX(update_time), 0) * 1000 FROM operations").fetchone()[0])


class PostgresOperationStore(SqlOperationStore):
    """PostgreSQL (psycopg 3), for several replicas of a service sharing one database. One
    autocommit connection per store, used under the store's lock; a lost connection is opened
    again on the next call (a database restart costs the calls in flight, not the process)."""

    placeholder = "%s"
    real_type = "DOUBLE PRECISION"
    shared = True

    def __init__(self, url: str) -> None:
        super().__init__()
        import psycopg

        self._psycopg = psycopg
        self.url = url
        self._conn = self._connect()
        with self._lock:
            statements = _SCHEMA.format(real=self.real_type).split(";")
            self._conn.execute(statements[0])  # the table; older stores get their new columns next
            # A sequence bumped by every write: version() reads it without scanning the table.
            self._conn.execute("CREATE SEQUENCE IF NOT EXISTS operations_changes")
            self._migrate()
            for statement in statements[1:]:
                self._conn.execute(statement)

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except self._psycopg.OperationalError as exc:
            raise Unavailable(f"operations database {_redacted(self.url)}: {exc}".strip()) from None

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        if self._conn.closed:
            self._conn = self._connect()
        try:
            cur = self._conn.execute(sql, args)
            if not sql.lstrip().upper().startswith("SELECT"):
                self._conn.execute("SELECT nextval('operations_changes')")
            return cur
        except self._psycopg.OperationalError as exc:
            self._conn.close()
            raise Unavailable(f"operations database {_redacted(self.url)}: {exc}".strip()) from None

    def _column_names(self) -> set[str]:
        rows = self._run("SELECT column_name FROM information_schema.columns WHERE table_name = 'operations'").fetchall()
        return {row[0] for row in rows}

    def version(self) -> int:
        row = self._run("SELECT last_value + CASE WHEN is_called THEN 1 ELSE 0 END FROM operations_changes").fetchone()
        return int(row[0])


def _redacted(url: str) -> str:
    """The URL without its password (errors and logs never show it)."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}" if ":" in credentials else url


def open_operation_store(db_url: str) -> OperationStore:
    """Open the operation store named by a database URL: ``sqlite:///abs/path.db`` (embedded, the
    default) or ``postgresql://user:password@host:5432/db`` (shared by replicas)."""
    if db_url.startswith("sqlite:///"):
        return SqliteOperationStore(Path(db_url[len("sqlite:///"):]))
    if db_url.startswith(("postgresql://", "postgres://")):
        return PostgresOperationStore(db_url)
    if db_url == "sqlite://" or db_url == ":memory:":
        raise InvalidArgument("an in-memory operation store would lose jobs on restart; give a file path")
    raise InvalidArgument(f"unsupported operations database URL {_redacted(db_url)!r}; supported: sqlite:///path, "
                          "postgresql://user:password@host:port/database")
