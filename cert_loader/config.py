"""Connection settings, read once from the environment into frozen values that print redacted."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

from cert_loader.errors import ConfigError
from cert_loader.data_root import data_root as data_root_of

from cert_loader.constants import ALL_STORES, GRAPH_STORE, PG_STORES


# libpq key=value conninfo: a password value is a bare word or a single-quoted string with \' escapes.
_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
# Fallback for a URL urlsplit cannot parse (a broken IPv6 host): the userinfo's password, and ?password=.
_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """Replace the password of a URL (or a libpq key=value string) with ``***``."""
    if "://" not in url:
        return _KV_PASSWORD.sub(r"\1***", url)
    try:
        split = urlsplit(url)
    except ValueError:  # the driver will refuse it too; still never show the password
        return _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", url))
    netloc = split.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    query = "&".join(
        "password=***" if q.lower().startswith("password=") else q for q in split.query.split("&")
    ) if split.query else ""
    return urlunsplit((split.scheme, netloc, split.path, query, split.fragment))


def url_secrets(url: str) -> list[str]:
    """The passwords a URL or key=value conninfo carries, as written and percent-decoded, longest first."""
    found: list[str] = []
    if "://" not in url:
        for m in _KV_PASSWORD.finditer(url):
            found += [m.group(2).strip("'"), m.group(2).strip("'").replace("\\'", "'")]
    else:
        netloc = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
        if "@" in netloc and ":" in netloc.rsplit("@", 1)[0]:
            found.append(netloc.rsplit("@", 1)[0].split(":", 1)[1])
        found += [m.group(0).split("=", 1)[1] for m in _QUERY_PASSWORD.finditer(url)]
    found += [unquote(f) for f in found]
    return sorted({f for f in found if f}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's message) with ``url`` shown redacted and any of its passwords replaced by ``***``.

    libpq may echo part of a conninfo it refuses (``invalid percent-encoded token: "<password>"``).
    """
    text = text.replace(url, redact_url(url))
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text


@dataclass(frozen=True)
class PgStoreConfig:
    """One PostgreSQL CERT store: its name (``ids`` …) and libpq URL."""

    name: str
    url: str = field(repr=False)

    def redacted(self) -> str:
        return redact_url(self.url)

    def scrub(self, text: str) -> str:
        """A driver message about this store with its password removed (issue 7, point 3)."""
        return scrub(text, self.url)

    def __repr__(self) -> str:
        return f"PgStoreConfig(name={self.name!r}, url={self.redacted()!r})"


@dataclass(frozen=True)
class GraphConfig:
    """The Neo4j (Bolt) store ``sp``."""

    uri: str
    user: str
    password: str = field(repr=False)
    database: str = "neo4j"

    def redacted(self) -> str:
        return f"{redact_url(self.uri)} (user {self.user}, database {self.database})"

    def __repr__(self) -> str:
        return f"GraphConfig({self.redacted()})"


@dataclass(frozen=True)
class LoaderConfig:
    """Everything a load needs to reach the stores and the input files."""

    data_root: Path
    pg: Mapping[str, PgStoreConfig]
    graph: GraphConfig | None = None

    def redacted(self) -> dict[str, str]:
        out = {name: cfg.redacted() for name, cfg in self.pg.items()}
        if self.graph is not None:
            out[GRAPH_STORE] = self.graph.redacted()
        return out

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        data_root: str | Path | None = None,
        stores: tuple[str, ...] | None = None,
    ) -> "LoaderConfig":
        """Build the config from ``CERT_*`` variables (DESIGN.md section 4).

        ``stores`` restricts which stores are required; a selected store whose variable is
        missing is an error naming the variable.
        """
        wanted = stores or ALL_STORES
        unknown = [s for s in wanted if s not in ALL_STORES]
        if unknown:
            raise ConfigError(
                f"unknown store(s) {', '.join(unknown)}",
                hint=f"choose from {', '.join(ALL_STORES)}",
            )
        root = data_root_of(data_root or env.get("CERT_DATA_ROOT") or ".")
        pg: dict[str, PgStoreConfig] = {}
        missing: list[str] = []
        for name in PG_STORES:
            if name not in wanted:
                continue
            var = f"CERT_{name.upper()}_URL"
            url = env.get(var, "").strip()
            if not url:
                missing.append(var)
            else:
                pg[name] = PgStoreConfig(name, url)
        graph = None
        if GRAPH_STORE in wanted:
            uri = env.get("CERT_SP_URI", "").strip()
            if not uri:
                missing.append("CERT_SP_URI")
            else:
                graph = GraphConfig(
                    uri=uri,
                    user=env.get("CERT_SP_USER", "neo4j"),
                    password=env.get("CERT_SP_PASSWORD", ""),
                    database=env.get("CERT_SP_DATABASE", "neo4j"),
                )
        if missing:
            raise ConfigError(
                f"environment variable(s) {', '.join(missing)} not set",
                hint="export a libpq URL for each selected store, or pass --stores to load fewer stores",
            )
        return cls(data_root=root, pg=pg, graph=graph)


# The seed's switch for the pre-load backup (DESIGN.md section 5, point 5): `--backup` without the flag.
BACKUP_SWITCH = "ENABLE_CERT_BACKUP"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def backup_enabled(env: Mapping[str, str]) -> bool:
    """Whether ENABLE_CERT_BACKUP asks for a backup before every load; a value that is neither yes nor no is refused."""
    value = env.get(BACKUP_SWITCH, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{BACKUP_SWITCH}={env.get(BACKUP_SWITCH)!r} is neither true nor false",
                      hint=f"set {BACKUP_SWITCH}=true or false (or unset it)")
