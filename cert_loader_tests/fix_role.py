"""Least-privilege login roles for the tests: granted exactly what `cert-loader grants` prints, dropped after the session."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from cert_loader.config import LoaderConfig, PgStoreConfig
from cert_loader.grants import grant_statements, read_grant_targets
from cert_loader_tests.fix_pg import RUN_ID, db_url


@dataclass(frozen=True)
class Role:
    """A login role of this test run; ``password`` is recognizable so tests can grep every output for it."""

    name: str
    password: str

    def url(self, database_url: str) -> str:
        """``database_url`` (an admin URL of a test database) as this role, password included."""
        split = urlsplit(database_url)
        return f"postgresql://{self.name}:{self.password}@{split.hostname}:{split.port or 5432}{split.path}"

    def urls(self, stores: dict[str, str]) -> dict[str, str]:
        return {name: self.url(url) for name, url in stores.items()}

    def config(self, stores: dict[str, str], data_root: Path, names=None) -> LoaderConfig:
        urls = self.urls(stores)
        return LoaderConfig(data_root, {n: PgStoreConfig(n, urls[n]) for n in (names or urls)})

    def env(self, stores: dict[str, str], data_root: Path) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CERT_DATA_ROOT": str(data_root)}
        env.update({f"CERT_{n.upper()}_URL": u for n, u in self.urls(stores).items()})
        return env


def grant(role: str, database_url: str, store: str) -> list[str]:
    """Run, as the database's owner (the admin here), the grants `cert-loader grants` would print."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        statements = grant_statements(role, read_grant_targets(conn, store))
        for statement in statements:
            conn.execute(statement)
    return statements


@pytest.fixture(scope="session")
def make_role(pg_admin, make_database) -> Iterator[Callable[..., Role]]:
    """Create a LOGIN role ``cert_loader_<run>_<suffix>`` (no superuser, owns nothing); drop it at the end.

    Depends on ``make_database`` so it is torn down first, while the databases holding its grants exist.
    """
    made: list[Role] = []

    def make(suffix: str) -> Role:
        role = Role(f"cert_loader_{RUN_ID}_{suffix}", f"S3cret-{RUN_ID}-{suffix}-never-print")
        pg_admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
            sql.Identifier(role.name), sql.Literal(role.password)))
        made.append(role)
        return role

    yield make
    for role in made:
        _drop_role(pg_admin, role.name)


def _drop_role(pg_admin, name: str) -> None:
    pg_admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))
    for (database,) in pg_admin.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"cert_{RUN_ID}_%",)
    ).fetchall():
        with psycopg.connect(db_url(database), autocommit=True) as conn:
            for (gid,) in conn.execute(
                "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND owner = %s", (name,)
            ).fetchall():
                conn.tpc_rollback(gid)
            conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    # shared objects: a database the role owns, a parameter grant
    pg_admin.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(sql.Identifier(name)))
    pg_admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    pg_admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def loader_role(make_role, sample_stores) -> Role:
    """The loader's role of issue 7, point 2: exactly the grants of `cert-loader grants` on the sample stores."""
    role = make_role("loader")
    for store, url in sample_stores.items():
        grant(role.name, url, store)
    return role


@pytest.fixture
def as_loader(loader_role, sample_stores, data_root) -> Callable[..., LoaderConfig]:
    """A LoaderConfig over the sample stores, connecting as the least-privilege role."""

    def make(stores=None) -> LoaderConfig:
        return loader_role.config(sample_stores, data_root, stores)

    return make

