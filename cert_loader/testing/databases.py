"""Throwaway PostgreSQL databases for the tests and the benchmark: created fresh (marked as CERT stores), dropped with their prepared transactions."""

from __future__ import annotations

import psycopg
from psycopg import sql

from cert_loader.mark import mark_statements


def database_url(admin_url: str, name: str) -> str:
    """``admin_url`` pointed at database ``name`` (same server, user and options)."""
    return admin_url.rsplit("/", 1)[0] + "/" + name


def create_database(admin_url: str, name: str, ddl: str | None = None, *, mark: bool = True) -> str:
    """A fresh database ``name`` (marked as a CERT store unless told otherwise, then ``ddl`` run); returns its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = database_url(admin_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        if mark:
            for statement in mark_statements(name):
                conn.execute(statement)
        if ddl:
            conn.execute(ddl)
    return url


def rollback_prepared(admin_url: str, name: str) -> list[str]:
    """Roll back every prepared transaction of database ``name`` (they would block DROP DATABASE); their gids."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        gids = [gid for (gid,) in conn.execute(
            "SELECT gid FROM pg_prepared_xacts WHERE database = %s", (name,)).fetchall()]
    if gids:
        with psycopg.connect(database_url(admin_url, name), autocommit=True) as conn:
            for gid in gids:
                conn.tpc_rollback(gid)
    return gids


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` after rolling back its prepared transactions; nothing if it does not exist."""
    rollback_prepared(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
