"""The ops tests' database: SQLite, and PostgreSQL too when QAMAR_TEST_POSTGRES_URL names a server."""

import os

import pytest

from qamar.ops.archive import PacketArchive


def _backends():
    yield "sqlite"
    if os.environ.get("QAMAR_TEST_POSTGRES_URL"):
        yield "postgresql"


@pytest.fixture(params=list(_backends()))
def url(request, tmp_path):
    """The URL of an empty database (PostgreSQL: the archive's and the ground service's tables dropped)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ops.db'}"
    url = os.environ["QAMAR_TEST_POSTGRES_URL"]
    with PacketArchive(url) as archive, archive.transaction() as cur:
        cur.execute("DROP TABLE IF EXISTS packets, rejects, commands, alarms, refusals")
    return url
