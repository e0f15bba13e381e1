"""The ledger in a PostgreSQL database: one chain and one set of locks shared by every machine.

The same entries and the same signed hash chain as `relpromote.adapters.sqlite_ledger`, in the schema
`relpromote` that the database's owner creates once (`relpromote ledger init-db`, or the SQL it prints).

- Appends are serialized in the database: each is one transaction that first takes a transaction-level
  advisory lock, then re-checks the decision against every entry, seals (relpromote.ledger.seal_append)
  and inserts. Operators and jobs on several machines keep one linear chain.
- The database keeps the ledger append-only: the role relpromote connects as may SELECT and INSERT
  entries and nothing else (checked at every start: a role that may UPDATE, DELETE or TRUNCATE them, owns
  them or is a superuser is refused with the statements that fix it), and triggers refuse UPDATE, DELETE
  and TRUNCATE even to the owner.
- An environment lock is a row plus a session-level advisory lock that the holder's connection keeps
  for as long as its run lives: a lock whose advisory lock is gone (the run crashed, its machine died) is
  visibly stale to every operator (`Lock.alive`).
- The URL never carries a password: libpq finds it (~/.pgpass, a service file, PGPASSWORD set from a
  secret store).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from relpromote import events
from relpromote.errors import BadInput
from relpromote.identity import Identity
from relpromote.ledger import Entry, Precondition, corrupt_entry, mention_needle, seal_append, utc_now
from relpromote.lock import Lock

if TYPE_CHECKING:
    import psycopg

SCHEMA = "relpromote"
PG_SCHEMA_VERSION = 1
# Advisory lock keys (two int4 keys: a namespace, then the key): appends, lock bookkeeping, each held lock.
_NAMESPACE = 0x52504C47  # "RPLG"
_APPEND_KEY = 1
_LOCKS_KEY = 2
_HELD_NAMESPACE = 0x52504C48  # a held environment lock: key derived from its lock id

_COLUMNS = "seq, recorded_at, kind, actor, public_key, payload, prev_hash, hash, signature"
_LOCK_COLUMNS = "environment, lock_id, holder, purpose, since, pid, hostname"
INSTALL_HINT = "pip install 'relpromote[postgresql]'"


def schema_sql(role: str) -> str:
    """What the database's owner runs once (and again after an upgrade): the schema, append-only triggers,
    and the grants that let `role` (the role relpromote connects as) read and append, and nothing more."""
    grantee = _identifier(role)
    return f"""\
-- relpromote ledger schema {PG_SCHEMA_VERSION}: run as the role that will own the tables (not as {role}).
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version (version integer NOT NULL);
INSERT INTO {SCHEMA}.schema_version SELECT {PG_SCHEMA_VERSION} WHERE NOT EXISTS (SELECT 1 FROM {SCHEMA}.schema_version);
CREATE TABLE IF NOT EXISTS {SCHEMA}.entries (
    seq         bigint PRIMARY KEY CHECK (seq > 0),
    recorded_at text NOT NULL,
    kind        text NOT NULL,
    actor       text NOT NULL,
    public_key  text NOT NULL,
    payload     text NOT NULL,
    prev_hash   text NOT NULL,
    hash        text NOT NULL UNIQUE,
    signature   text NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_kind ON {SCHEMA}.entries (kind, seq);
CREATE INDEX IF NOT EXISTS entries_key ON {SCHEMA}.entries (public_key, seq);
CREATE OR REPLACE FUNCTION {SCHEMA}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'the ledger is append-only'; END $$;
CREATE OR REPLACE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON {SCHEMA}.entries
    FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.refuse_change();
CREATE OR REPLACE TRIGGER entries_no_truncate BEFORE TRUNCATE ON {SCHEMA}.entries
    FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.refuse_change();
CREATE TABLE IF NOT EXISTS {SCHEMA}.locks (
    environment text PRIMARY KEY,
    lock_id     text NOT NULL,
    holder      text NOT NULL,
    purpose     text NOT NULL,
    since       text NOT NULL,
    pid         integer NOT NULL,
    hostname    text NOT NULL,
    session_key integer NOT NULL  -- the advisory lock the holder's session keeps while its run lives
);
REVOKE ALL ON ALL TABLES IN SCHEMA {SCHEMA} FROM PUBLIC;
GRANT USAGE ON SCHEMA {SCHEMA} TO {grantee};
GRANT SELECT, INSERT ON {SCHEMA}.entries TO {grantee};
GRANT SELECT ON {SCHEMA}.schema_version TO {grantee};
GRANT SELECT, INSERT, DELETE ON {SCHEMA}.locks TO {grantee};
"""


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise BadInput(f"ledger.url is postgresql://…, which needs psycopg: {INSTALL_HINT}") from None
    return psycopg


def connection_settings(url: str) -> dict[str, str]:
    """The URL's libpq settings; refused (exit 2) when it carries a password in clear."""
    pg = _psycopg()
    try:
        settings: dict[str, str] = pg.conninfo.conninfo_to_dict(url)
    except pg.ProgrammingError as exc:
        raise BadInput(f"ledger url is not a PostgreSQL connection URL ({' '.join(str(exc).split())})") from None
    if settings.get("password"):
        raise BadInput(
            "the ledger url carries a password in clear; remove it and let libpq find it: ~/.pgpass (chmod 600), "
            "a service file (postgresql:///?service=NAME), or PGPASSWORD set from a secret store"
        )
    return settings


def connect(url: str, application: str = "relpromote") -> psycopg.Connection[Any]:
    pg = _psycopg()
    settings = connection_settings(url)
    extra = {key: value for key, value in (("connect_timeout", "10"), ("application_name", application)) if key not in settings}
    try:
        conn: psycopg.Connection[Any] = pg.connect(url, autocommit=True, **extra)
    except pg.Error as exc:
        raise BadInput(f"cannot connect to the ledger database ({' '.join(str(exc).split())}); check ledger.url") from None
    return conn


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _held_key(lock_id: str) -> int:
    return int.from_bytes(hashlib.sha256(lock_id.encode()).digest()[:4], "big") & 0x7FFFFFFF


class PgLedger:
    def __init__(self, url: str) -> None:
        self.url = url
        self.stamp: Callable[[], dict[str, Any]] | None = None
        self.authority: Callable[[dict[str, Any] | None], dict[str, Any] | None] | None = None
        self._held: set[str] = set()  # lock ids this connection holds the advisory lock of
        self._conn = connect(url)
        try:
            self._check_role()
        except BaseException:
            self._conn.close()
            raise

    # ---- start-up: the schema is there and this role can only read and append ----
    def _check_role(self) -> None:
        row = self._conn.execute(
            """
            SELECT current_user, r.rolsuper, n.oid IS NOT NULL, has_schema_privilege(n.oid, 'USAGE'),
                   c.oid IS NOT NULL, pg_get_userbyid(c.relowner), pg_has_role(c.relowner, 'USAGE'),
                   has_table_privilege(c.oid, 'SELECT'), has_table_privilege(c.oid, 'INSERT'),
                   has_table_privilege(c.oid, 'UPDATE'), has_table_privilege(c.oid, 'DELETE'),
                   has_table_privilege(c.oid, 'TRUNCATE')
              FROM pg_roles r
              LEFT JOIN pg_namespace n ON n.nspname = %(schema)s
              LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = 'entries'
             WHERE r.rolname = current_user
            """,
            {"schema": SCHEMA},
        ).fetchone()
        assert row is not None
        role, superuser, has_schema, usage, has_table, owner, owns, select, insert, update, delete, truncate = row
        where = f"database {self._conn.info.dbname} on {self._conn.info.host}"
        if not has_schema or not has_table:
            raise BadInput(
                f"{where} has no relpromote ledger (schema {SCHEMA}); as the role that will own it run: "
                f"relpromote ledger init-db --url URL --grant {role}"
            )
        if superuser:
            raise BadInput(
                f"role {role} is a superuser, which can rewrite the ledger; connect as a role with only SELECT and INSERT on "
                f"{SCHEMA}.entries (relpromote ledger init-db --url URL --grant ROLE)"
            )
        if owns:
            member = "" if owner == role else f" (as a member of {owner})"
            raise BadInput(
                f"role {role} owns {SCHEMA}.entries{member}, so it can rewrite the ledger; connect as another role, "
                f"granted by the owner: GRANT SELECT, INSERT ON {SCHEMA}.entries TO ROLE"
            )
        rights = [name for name, held in (("UPDATE", update), ("DELETE", delete), ("TRUNCATE", truncate)) if held]
        if rights:
            raise BadInput(
                f"role {role} may {', '.join(rights)} {SCHEMA}.entries, so the ledger is not append-only; as {owner} run: "
                f"REVOKE UPDATE, DELETE, TRUNCATE ON {SCHEMA}.entries FROM {_identifier(role)}; "
                f"GRANT SELECT, INSERT ON {SCHEMA}.entries TO {_identifier(role)}; "
                "(and from PUBLIC or any role it is a member of, if the right comes from there)"
            )
        if not (usage and select and insert):
            raise BadInput(
                f"role {role} cannot read and append to {SCHEMA}.entries; as {owner} run: "
                f"relpromote ledger init-db --url URL --grant {role}"
            )
        version = self._conn.execute(f"SELECT max(version) FROM {SCHEMA}.schema_version").fetchone()
        current = version[0] if version and version[0] is not None else 0
        if current > PG_SCHEMA_VERSION:
            raise BadInput(f"{where}: ledger schema {current} is newer than this relpromote understands ({PG_SCHEMA_VERSION}); upgrade relpromote")
        if current < PG_SCHEMA_VERSION:
            raise BadInput(f"{where}: ledger schema {current} is older than {PG_SCHEMA_VERSION}; as {owner} run: "
                           f"relpromote ledger init-db --url URL --grant {role}")

    # ---- the chain ----
    def append(
        self, kind: str, actor: str, identity: Identity, payload: dict[str, Any], precondition: Precondition | None = None
    ) -> Entry:
        """Seal and insert the next entry, serialized with every other writer of this database by a
        transaction-level advisory lock; `precondition` re-checks the decision inside that transaction."""
        if self.stamp is not None:
            payload = {**payload, "config": self.stamp()}
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_NAMESPACE, _APPEND_KEY))
            if precondition is not None:
                precondition(self.entries())
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM {SCHEMA}.entries ORDER BY seq DESC LIMIT 1").fetchone()
            last_name = self._conn.execute(
                f"SELECT actor FROM {SCHEMA}.entries WHERE public_key = %s ORDER BY seq DESC LIMIT 1", (identity.public_key,)
            ).fetchone()
            sealed = seal_append(_entry(row) if row else None, kind, actor, identity, payload, utc_now(),
                                 last_name=last_name[0] if last_name else None, authority=self.authority,
                                 last_authority=lambda: self._last_payload(events.AUTHORITY_RECORDED))
            self._insert(sealed)
        return sealed[-1]

    def copy_in(self, entries: Sequence[Entry]) -> None:
        """Insert `entries` as they are (same sequence numbers, hashes, signatures) into this empty ledger, in one
        transaction under the append lock: refused when the ledger already holds an entry."""
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_NAMESPACE, _APPEND_KEY))
            count = self._conn.execute(f"SELECT count(*) FROM {SCHEMA}.entries").fetchone()
            if count and count[0]:
                raise BadInput(f"the ledger in database {self._conn.info.dbname} already holds {count[0]} entries; "
                               "migrate only into an empty ledger")
            self._insert(entries)

    def _insert(self, entries: Sequence[Entry]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {SCHEMA}.entries ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(e.seq, e.recorded_at, e.kind, e.actor, e.public_key, json.dumps(e.payload, sort_keys=True), e.prev_hash, e.hash,
                  e.signature) for e in entries],
            )

    def _last_payload(self, kind: str) -> dict[str, Any] | None:
        row = self._conn.execute(f"SELECT payload FROM {SCHEMA}.entries WHERE kind = %s ORDER BY seq DESC LIMIT 1", (kind,)).fetchone()
        try:
            data = json.loads(row[0]) if row else None
        except (TypeError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def entries(self, kinds: Sequence[str] | None = None) -> list[Entry]:
        if kinds:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM {SCHEMA}.entries WHERE kind = ANY(%s) ORDER BY seq", (list(kinds),))
        else:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM {SCHEMA}.entries ORDER BY seq")
        return [_entry(row) for row in rows.fetchall()]

    def fingerprint(self) -> dict[str, Any]:
        """What a checkpoint of the folded state is keyed by (relpromote.adapters.state_checkpoint), computed in the
        database without sending the entries: the head as stored (rows, last sequence number, its hash) and a digest of
        every row's version (its physical place and the transaction that wrote it): a row updated or deleted and
        inserted again, even by the owner behind the triggers, has another."""
        row = self._conn.execute(
            f"SELECT count(*), max(seq), md5(string_agg(ctid::text || xmin::text, ',' ORDER BY seq)) FROM {SCHEMA}.entries").fetchone()
        count, last, versions = row if row is not None else (0, None, None)
        head = self._conn.execute(f"SELECT hash FROM {SCHEMA}.entries ORDER BY seq DESC LIMIT 1").fetchone()
        return {"head": [int(count or 0), int(last or 0), str(head[0]) if head else ""], "versions": versions or ""}

    def entries_mentioning(self, texts: Sequence[str]) -> list[Entry]:
        """The entries whose stored payload may hold each of `texts` as a JSON string (see ledger.mention_needle): a
        superset of those whose payload has such a value, in order; the caller filters them exactly."""
        needles = [mention_needle(text) for text in texts]
        where = " AND ".join("(strpos(payload, chr(92)) > 0 OR strpos(payload, %s) > 0)" for _ in needles) or "true"
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM {SCHEMA}.entries WHERE {where} ORDER BY seq", tuple(needles))
        return [_entry(row) for row in rows.fetchall()]

    # ---- environment locks: a row, and the holder's session-level advisory lock while its run lives ----
    def acquire(self, lock: Lock) -> Lock:
        key = _held_key(lock.lock_id)
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_NAMESPACE, _LOCKS_KEY))
            held = self.current(lock.environment)
            if held is not None:
                return held
            self._conn.execute(
                f"INSERT INTO {SCHEMA}.locks ({_LOCK_COLUMNS}, session_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (lock.environment, lock.lock_id, lock.holder, lock.purpose, lock.since, lock.pid, lock.hostname, key),
            )
            # Session-level: kept after this transaction commits, for as long as this connection lives.
            self._conn.execute("SELECT pg_advisory_lock(%s, %s)", (_HELD_NAMESPACE, key))
            self._held.add(lock.lock_id)
        return lock

    def release(self, environment: str, lock_id: str) -> bool:
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_NAMESPACE, _LOCKS_KEY))
            cursor = self._conn.execute(f"DELETE FROM {SCHEMA}.locks WHERE environment = %s AND lock_id = %s", (environment, lock_id))
        if lock_id in self._held:
            self._conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_HELD_NAMESPACE, _held_key(lock_id)))
            self._held.discard(lock_id)
        return cursor.rowcount == 1

    def current(self, environment: str) -> Lock | None:
        row = self._conn.execute(
            f"""
            SELECT {_LOCK_COLUMNS}, EXISTS (
                SELECT 1 FROM pg_locks
                 WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND classid = %s::bigint::oid AND objid = session_key::bigint::oid AND objsubid = 2)
              FROM {SCHEMA}.locks WHERE environment = %s
            """,
            (_HELD_NAMESPACE, environment),
        ).fetchone()
        if row is None:
            return None
        environment_, lock_id, holder, purpose, since, pid, hostname, alive = row
        return Lock(environment_, lock_id, holder, purpose, since, pid, hostname, alive=bool(alive))

    def close(self) -> None:
        self._conn.close()


def _entry(row: tuple[Any, ...]) -> Entry:
    """A stored row as an entry; a row that is not one (bad JSON) becomes a corrupt entry that never counts."""
    seq, recorded_at, kind, actor, public_key, payload, prev_hash, digest, signature = row
    try:
        data = json.loads(payload)
    except (TypeError, ValueError) as exc:
        return corrupt_entry(seq, digest, f"payload is not JSON ({exc})")
    if not isinstance(data, dict):
        return corrupt_entry(seq, digest, f"payload is a JSON {type(data).__name__}, not an object")
    return Entry(seq, recorded_at, kind, actor, public_key, data, prev_hash, digest, signature)


def init_database(url: str, role: str) -> str:
    """Run `schema_sql(role)` as the URL's role (the owner, idempotent); the database's name, for the report."""
    conn = connect(url, "relpromote ledger init-db")
    try:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if exists is None:
            raise BadInput(f"there is no role {role} in that server; create it first (CREATE ROLE {_identifier(role)} LOGIN), "
                           "or --grant the role relpromote connects as")
        if conn.execute("SELECT current_user").fetchone() == (role,):
            raise BadInput(f"connect as the role that will own the ledger, not as {role}: the role relpromote uses must not own it")
        script = schema_sql(role)
        with conn.transaction():
            conn.execute(script.encode())
        return str(conn.info.dbname)
    finally:
        conn.close()
