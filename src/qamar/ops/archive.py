"""Append-only packet archive: every packet received, exactly once, acknowledged only when committed.

The archive keeps raw CCSDS Space Packets (qamar.ops.packets) with their APID, type, 14-bit
sequence count and CUC time, in SQLite by default or PostgreSQL when given a
``postgresql://`` URL (through psycopg 3, imported only then). It reads packets only to the
framing level (:func:`qamar.ops.packets.peek_header`), so it archives packets of any
dictionary version.

Guarantees:

- **Batch commit, then acknowledge.** :meth:`PacketArchive.ingest` writes a batch in one
  transaction and returns only after the commit; callers acknowledge a packet only then, so a
  crash (SIGKILL) never loses an acknowledged packet.
- **Exactly once.** A packet is identified by (CUC time, APID, type, sequence count), a unique
  key; a packet sent again (e.g. re-sent after a restart because its acknowledgement was lost)
  is counted as a duplicate and not stored twice.
- **Sequence checks.** Per APID the 14-bit sequence count (wrapping at 16384) must advance by
  one: ingest counts gaps (missing counts), repeated counts and counts that go backwards;
  :meth:`PacketArchive.check_sequences` recounts them over the whole archive in time order.
- **Nothing silently dropped.** A packet that cannot be framed goes to a ``rejects`` table with
  the reason.

SQLite runs in WAL mode with ``synchronous=FULL`` by default: in WAL mode a commit survives an
application crash at any setting, but with NORMAL the last commits "might roll back following a
power loss or system crash" (https://sqlite.org/pragma.html#pragma_synchronous); since an
acknowledgement promises the packet is safe, FULL (an fsync of the WAL at each commit) is the
default and NORMAL an option for a ground station on a UPS. Batching makes the fsync cost per
packet small: about 100,000 packets/s against about 250/s with one commit per packet on the
development machine (docs/benchmarks.md, section ingest). PostgreSQL's default
``synchronous_commit=on`` likewise flushes its WAL before a commit returns.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Self, TextIO

from qamar.errors import DataFormatError
from qamar.ops.errors import PacketError
from qamar.ops.packets import (
    SEQ_COUNT_MODULO,
    TAI_1958_TO_J2000_S,
    peek_header,
    split_stream,
)

_log = logging.getLogger(__name__)
_TICKS_PER_S = 1 << 16
_SCHEMA = {
    "sqlite": [
        """CREATE TABLE IF NOT EXISTS packets (
            id INTEGER PRIMARY KEY AUTOINCREMENT, cuc INTEGER NOT NULL, apid INTEGER NOT NULL,
            packet_type INTEGER NOT NULL, seq_count INTEGER NOT NULL, received_tai_s REAL, raw BLOB NOT NULL,
            UNIQUE (cuc, apid, packet_type, seq_count))""",
        """CREATE TABLE IF NOT EXISTS rejects (
            id INTEGER PRIMARY KEY AUTOINCREMENT, received_tai_s REAL, reason TEXT NOT NULL, raw BLOB NOT NULL)""",
    ],
    "postgresql": [
        """CREATE TABLE IF NOT EXISTS packets (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, cuc BIGINT NOT NULL, apid INTEGER NOT NULL,
            packet_type SMALLINT NOT NULL, seq_count INTEGER NOT NULL, received_tai_s DOUBLE PRECISION,
            raw BYTEA NOT NULL, UNIQUE (cuc, apid, packet_type, seq_count))""",
        """CREATE TABLE IF NOT EXISTS rejects (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, received_tai_s DOUBLE PRECISION,
            reason TEXT NOT NULL, raw BYTEA NOT NULL)""",
    ],
}
_INSERT = ("INSERT INTO packets (cuc, apid, packet_type, seq_count, received_tai_s, raw) "
           "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
_REJECT = "INSERT INTO rejects (received_tai_s, reason, raw) VALUES (?, ?, ?)"


@dataclass(frozen=True)
class ArchivedPacket:
    """One archived packet: CUC time as TAI seconds past J2000, header fields and the raw octets."""

    t_tai_s: float
    apid: int
    packet_type: int
    seq_count: int
    raw: bytes


@dataclass
class SequenceCheck:
    """Sequence-count bookkeeping of one APID (14-bit counts in time order)."""

    packets: int = 0
    gaps: int = 0  # counts missing between consecutive packets
    repeated: int = 0  # same count twice in a row (a different packet: same count, other time)
    backwards: int = 0  # count went back by less than half the counter range
    last: int | None = None

    def add(self, seq_count: int) -> None:
        self.packets += 1
        if self.last is not None:
            step = (seq_count - self.last) % SEQ_COUNT_MODULO
            if step == 0:
                self.repeated += 1
            elif step > SEQ_COUNT_MODULO // 2:
                self.backwards += 1
            else:
                self.gaps += step - 1
        self.last = seq_count


@dataclass
class IngestReport:
    """What one :meth:`PacketArchive.ingest` call did (all committed when it returns)."""

    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    gaps: int = 0
    repeated: int = 0
    backwards: int = 0


class PacketArchive:
    """An append-only packet archive at ``url``: ``sqlite:///path.db`` (or a plain path) or ``postgresql://...``.

    ``synchronous`` (SQLite only) is ``FULL`` (default, durable across power loss) or
    ``NORMAL`` (durable across crashes of the process). Use as a context manager or call
    :meth:`close`. Raises DataFormatError for an unknown URL scheme or a database that cannot
    be opened.
    """

    def __init__(self, url: str | Path = "sqlite:///qamar-ops.db", synchronous: str = "FULL"):
        self.url = str(url)
        if self.url.startswith(("postgresql://", "postgres://")):
            self.dialect = "postgresql"
            self._connection = _connect_postgresql(self.url)
        else:
            path = self.url.removeprefix("sqlite:///") if self.url.startswith("sqlite:///") else self.url
            if "://" in path:
                raise DataFormatError(f"archive URL {self.url!r}: use sqlite:///PATH or postgresql://USER@HOST/DB")
            if synchronous not in ("FULL", "NORMAL"):
                raise ValueError(f"synchronous must be FULL or NORMAL, got {synchronous!r}")
            self.dialect = "sqlite"
            try:
                self._connection = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN/COMMIT
                self._connection.execute("PRAGMA journal_mode=WAL")
                self._connection.execute(f"PRAGMA synchronous={synchronous}")
            except sqlite3.Error as exc:
                raise DataFormatError(f"cannot open the SQLite archive {path}: {exc}") from None
        with self._transaction() as cur:
            for statement in _SCHEMA[self.dialect]:
                cur.execute(statement)
        self.sequences: dict[int, SequenceCheck] = collections.defaultdict(SequenceCheck)
        self.totals = IngestReport()
        for apid, seq_count in self._last_counts():
            self.sequences[apid].last = seq_count

    # --- plumbing ------------------------------------------------------------------------------

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.dialect == "postgresql" else statement

    @contextlib.contextmanager
    def _transaction(self) -> Iterator:
        """A cursor inside one transaction: committed on normal exit, rolled back on an exception."""
        conn = self._connection
        if self.dialect == "sqlite":
            conn.execute("BEGIN IMMEDIATE")
        cursor = conn.cursor()
        try:
            yield cursor
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit() if self.dialect == "postgresql" else conn.execute("COMMIT")
        finally:
            cursor.close()

    def transaction(self):
        """A cursor inside one transaction on the archive's database (committed on exit, rolled back on an
        exception), for the tables kept beside the packets (qamar.ops.ground: commands, alarms).
        Write ``?`` placeholders through :meth:`sql`."""
        return self._transaction()

    def sql(self, statement: str) -> str:
        """``statement`` with ``?`` placeholders in this database's paramstyle."""
        return self._sql(statement)

    def _last_counts(self) -> list[tuple[int, int]]:
        """(APID, sequence count) of the last packet archived per APID, to carry on after a restart."""
        cur = self._connection.cursor()
        cur.execute("SELECT p.apid, p.seq_count FROM packets p JOIN (SELECT apid, MAX(id) AS id FROM packets "
                    "GROUP BY apid) m ON p.id = m.id")
        rows = cur.fetchall()
        cur.close()
        return rows

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------------

    def ingest(self, packets: Sequence[bytes], received_tai_s: float | None = None) -> IngestReport:
        """Archive a batch of raw packets in one transaction; returns after the commit.

        Packets already in the archive are counted as duplicates, unframeable ones are stored in
        ``rejects`` and counted; sequence gaps, repeats and backward steps are counted per APID
        (``sequences``) and in the report. If the database raises, nothing of the batch is
        stored and the exception propagates: acknowledge nothing.
        """
        report = IngestReport()
        checks_before = {apid: (c.gaps, c.repeated, c.backwards) for apid, c in self.sequences.items()}
        sequences = {apid: SequenceCheck(**vars(c)) for apid, c in self.sequences.items()}
        rows, rejects = [], []
        for raw in packets:
            raw = bytes(raw)
            try:
                packet_type, apid, seq_count, cuc = peek_header(raw)
            except PacketError as exc:
                rejects.append((received_tai_s, exc.reason, raw))
                _log.warning("packet rejected (kept in table rejects): %s", exc)
                continue
            rows.append((cuc, apid, packet_type, seq_count, received_tai_s, raw))
        with self._transaction() as cur:
            if rejects:
                cur.executemany(self._sql(_REJECT), rejects)
            stored = self._insert(cur, rows)
        report.rejected = len(rejects)
        for row, new in zip(rows, stored):
            if new:
                report.stored += 1
                sequences.setdefault(row[1], SequenceCheck()).add(row[3])
            else:
                report.duplicates += 1
        # Committed: only now does the in-memory bookkeeping move on.
        for apid, check in sequences.items():
            gaps, repeated, backwards = checks_before.get(apid, (0, 0, 0))
            report.gaps += check.gaps - gaps
            report.repeated += check.repeated - repeated
            report.backwards += check.backwards - backwards
            self.sequences[apid] = check
        for name in vars(report):
            setattr(self.totals, name, getattr(self.totals, name) + getattr(report, name))
        return report

    def _insert(self, cur, rows: list[tuple]) -> list[bool]:
        """Insert ``rows`` (skipping those already archived); which of them were new.

        One executemany for the whole batch; only if some rows were already there (a resend)
        is it undone to a savepoint and redone row by row to tell which.
        """
        insert = self._sql(_INSERT)
        cur.execute("SAVEPOINT batch")
        cur.executemany(insert, rows)
        if cur.rowcount == len(rows):
            return [True] * len(rows)
        cur.execute("ROLLBACK TO SAVEPOINT batch")
        new = []
        for row in rows:
            cur.execute(insert, row)
            new.append(cur.rowcount == 1)
        return new

    # --- reading -------------------------------------------------------------------------------

    def count(self, apid: int | None = None) -> int:
        """Number of archived packets (of one APID if given)."""
        cur = self._connection.cursor()
        if apid is None:
            cur.execute("SELECT COUNT(*) FROM packets")
        else:
            cur.execute(self._sql("SELECT COUNT(*) FROM packets WHERE apid = ?"), (apid,))
        (n,) = cur.fetchone()
        cur.close()
        return n

    def replay(self, start_tai_s: float = -TAI_1958_TO_J2000_S, end_tai_s: float = float(2**32),
               apids: Iterable[int] | None = None, batch: int = 10_000) -> Iterator[ArchivedPacket]:
        """Packets with CUC time in [start_tai_s, end_tai_s) (TAI seconds past J2000), in time order.

        Packets with the same time come in archive order. ``apids`` restricts to some APIDs.
        Streams from the database ``batch`` rows at a time.
        """
        low = max(0, round((start_tai_s + TAI_1958_TO_J2000_S) * _TICKS_PER_S))
        high = min(1 << 48, round((end_tai_s + TAI_1958_TO_J2000_S) * _TICKS_PER_S))
        wanted = None if apids is None else sorted(set(apids))
        where = "cuc >= ? AND cuc < ?"
        params: list = [low, high]
        if wanted is not None:
            where += " AND apid IN (" + ", ".join("?" * len(wanted)) + ")" if wanted else " AND 1 = 0"
            params += wanted
        cur = self._connection.cursor()
        cur.execute(self._sql(f"SELECT cuc, apid, packet_type, seq_count, raw FROM packets WHERE {where} "
                              "ORDER BY cuc, id"), params)
        try:
            while rows := cur.fetchmany(batch):
                for cuc, apid, packet_type, seq_count, raw in rows:
                    yield ArchivedPacket(cuc / _TICKS_PER_S - TAI_1958_TO_J2000_S, apid, packet_type, seq_count,
                                         bytes(raw))
        finally:
            cur.close()

    def check_sequences(self) -> dict[int, SequenceCheck]:
        """Per APID, the sequence bookkeeping recomputed over the whole archive in time order."""
        checks: dict[int, SequenceCheck] = collections.defaultdict(SequenceCheck)
        cur = self._connection.cursor()
        cur.execute("SELECT apid, seq_count FROM packets ORDER BY cuc, id")
        while rows := cur.fetchmany(10_000):
            for apid, seq_count in rows:
                checks[apid].add(seq_count)
        cur.close()
        return dict(checks)

    def rejects(self) -> list[tuple[str, bytes]]:
        """(reason, raw octets) of every packet that could not be framed, in arrival order."""
        cur = self._connection.cursor()
        cur.execute("SELECT reason, raw FROM rejects ORDER BY id")
        rows = [(reason, bytes(raw)) for reason, raw in cur.fetchall()]
        cur.close()
        return rows


def _connect_postgresql(url: str):
    try:
        import psycopg
    except ImportError:
        raise DataFormatError("a postgresql:// archive needs psycopg 3: pip install 'psycopg[binary]'") from None
    try:
        return psycopg.connect(url)
    except psycopg.Error as exc:
        raise DataFormatError(f"cannot connect to the PostgreSQL archive {url}: {exc}") from None


def serve_stream(archive: PacketArchive, source: BinaryIO, acks: TextIO, max_batch: int = 4096,
                 read_size: int = 1 << 16) -> int:
    """Ingest a byte stream of concatenated packets from ``source`` until it closes.

    Reads what is available (up to ``read_size`` octets), archives the complete packets in
    batches of at most ``max_batch`` and, after each commit, writes one line to ``acks``: the
    number of packets of this stream archived so far (stored, duplicate or rejected). A sender
    that restarts the service resends everything after the last acknowledged count. An
    unfinished packet at the end of the stream is rejected as MALFORMED. Returns the count.
    """
    fd = source.fileno()
    pending = b""
    done = 0
    while chunk := os.read(fd, read_size):
        packets, pending = split_stream(pending + chunk)
        for start in range(0, len(packets), max_batch):
            part = packets[start:start + max_batch]
            archive.ingest(part)
            done += len(part)
            acks.write(f"{done}\n")
            acks.flush()
    if pending:
        archive.ingest([pending])
        done += 1
        acks.write(f"{done}\n")
        acks.flush()
    return done
