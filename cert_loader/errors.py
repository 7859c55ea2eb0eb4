"""One exception tree, so callers and the report can say which store, table and district failed."""

from __future__ import annotations

from typing import Any


class CertLoaderError(Exception):
    """Root of every error the loader raises on purpose.

    The message is built from the fields so every error names its place; ``attrs()`` feeds the
    load report and Dagster metadata.
    """

    def __init__(
        self,
        message: str,
        *,
        store: str | None = None,
        table: str | None = None,
        district: str | None = None,
        hint: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.table = table
        self.district = district
        self.hint = hint
        self.details = details or {}
        self.reason = message
        super().__init__(self._compose())

    def _compose(self) -> str:
        place = ": ".join(p for p in (self.store, self.table) if p)
        text = f"{place}: {self.reason}" if place else self.reason
        if self.hint:
            text = f"{text}; {self.hint}"
        return text

    def attrs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": type(self).__name__, "message": str(self)}
        for key in ("store", "table", "district"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.details:
            out["details"] = self.details
        return out


class InputError(CertLoaderError):
    """The district's input files are missing, refused by the validation gate, or malformed."""


class ConfigError(CertLoaderError):
    """A setting (environment variable, URL, option) is missing or wrong."""


class CatalogError(CertLoaderError):
    """The live catalog does not fit the input or the plan (unknown table, column, FK order, cycle)."""


class StoreError(CertLoaderError):
    """A store (database) refused a statement or could not be reached.

    ``transient`` tells whether retrying the whole load may succeed (a lost connection, a
    serialization failure) as opposed to bad data or a missing grant. ``driver_error`` is the driver's
    own exception (also the ``__cause__``): match SQLSTATEs through its class, e.g.
    ``isinstance(exc.driver_error, psycopg.errors.UniqueViolation)``, never through message text.
    """

    def __init__(self, message: str, *, transient: bool = False, driver_error: BaseException | None = None,
                 **kwargs: Any) -> None:
        self.transient = transient
        self.driver_error = driver_error
        super().__init__(message, **kwargs)


class VerificationError(CertLoaderError):
    """A post-load check (row count, FK integrity) failed inside the transaction."""

    def __init__(self, message: str, *, checks: list[Any] | None = None, **kwargs: Any) -> None:
        self.checks = checks or []
        super().__init__(message, **kwargs)


class InDoubtError(CertLoaderError):
    """A two-phase commit could not be finished; ``cert-loader recover`` resolves it."""


class LoadLockedError(CertLoaderError):
    """Another load of the same district holds the district's advisory lock."""
