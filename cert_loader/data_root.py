"""The data root (DESIGN.md section 2): a local directory or an object-store URL (``s3://bucket/prefix``).

A local root is a :class:`pathlib.Path` and keeps every behaviour it had (fsync, atomic renames,
memory-map off). An ``s3://`` root is an :class:`S3Path`: the small part of the ``Path`` interface the
loader uses (``/``, ``parent``, ``name``, ``exists``/``is_file``/``is_dir``, ``read_bytes``/``read_text``,
``write_bytes``/``write_text``, ``iterdir``, ``glob`` of one level, ``mkdir``) over
:class:`pyarrow.fs.S3FileSystem`. Credentials and region come from the usual AWS environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` or
``AWS_DEFAULT_REGION``, profiles); an S3-compatible server is reached through ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL`` (read here and passed as ``endpoint_override``, so it works whatever the SDK
version honours). On S3 a write is one whole-object PUT: the object appears complete or not at all, so
it replaces the local temp-file + fsync + rename.

Nothing here ever prints credentials: ``str()`` of a root is ``s3://bucket/key`` without the query, the
endpoint or any user info (:func:`redact`).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from cert_loader.errors import InputError

SCHEME = "s3://"
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)
_QUERY_SECRET = re.compile(r"(?i)((?:access_key|secret_key|session_token|password)=)[^&\s]*")


def redact(text: str) -> str:
    """``text`` with user info of URLs and key/secret query values replaced by ``***``."""
    return _QUERY_SECRET.sub(r"\1***", _USERINFO.sub(r"\g<scheme>***@", str(text)))


def data_root(value: Any) -> "Path | S3Path":
    """The root for a path, a URL or an existing root (``.`` when empty)."""
    if isinstance(value, S3Path):
        return value
    if value and str(value).lower().startswith(SCHEME):
        return S3Path.from_url(str(value))
    if value and "://" in str(value):
        raise InputError(f"data root {redact(str(value))} is not supported",
                         hint="use a local directory or an s3://bucket/prefix URL")
    return Path(value or ".")


def _endpoint(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """``(host[:port], scheme)`` of the endpoint override from the environment, or ``(None, None)``."""
    for name in ENDPOINT_VARIABLES:
        if env.get(name):
            parts = urlsplit(env[name])
            if parts.scheme and parts.netloc:
                return parts.netloc.rsplit("@", 1)[-1], parts.scheme
            return env[name], None
    return None, None


@lru_cache(maxsize=8)
def _filesystem(endpoint: str | None, scheme: str | None, region: str | None,
                key_id: str | None) -> pafs.S3FileSystem:
    options: dict[str, Any] = {"retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=2),
                               "connect_timeout": 5, "request_timeout": 30}
    if endpoint:
        options["endpoint_override"] = endpoint
    if scheme:
        options["scheme"] = scheme
    if region:
        options["region"] = region
    return pafs.S3FileSystem(**options)  # keys, token and profile: the SDK's default chain (environment)


def s3_filesystem(env: Mapping[str, str] | None = None) -> pafs.S3FileSystem:
    """One S3 filesystem per (endpoint, region, key id) of the environment, reused by every path."""
    env = os.environ if env is None else env
    endpoint, scheme = _endpoint(env)
    region = next((env[n] for n in REGION_VARIABLES if env.get(n)), None)
    return _filesystem(endpoint, scheme, region, env.get("AWS_ACCESS_KEY_ID"))


class S3Path:
    """An object key under an ``s3://`` data root; behaves like the ``Path`` subset the loader uses."""

    __slots__ = ("bucket", "key")

    def __init__(self, bucket: str, key: str = "") -> None:
        self.bucket = bucket
        self.key = str(PurePosixPath(key)).strip("/") if key and key.strip("/") else ""

    @classmethod
    def from_url(cls, url: str) -> "S3Path":
        parts = urlsplit(url)
        if not parts.netloc:
            raise InputError(f"data root {redact(url)} names no bucket", hint="write s3://bucket/prefix")
        return cls(parts.netloc.rsplit("@", 1)[-1], parts.path)

    # -- path arithmetic -------------------------------------------------------------------------
    def __truediv__(self, other: Any) -> "S3Path":
        return S3Path(self.bucket, f"{self.key}/{other}" if self.key else str(other))

    @property
    def parent(self) -> "S3Path":
        return S3Path(self.bucket, str(PurePosixPath(self.key).parent) if "/" in self.key else "")

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.key).suffix

    @property
    def stem(self) -> str:
        return PurePosixPath(self.key).stem

    @property
    def fs_path(self) -> str:
        """The path pyarrow's S3 filesystem takes: ``bucket/key``."""
        return f"{self.bucket}/{self.key}" if self.key else self.bucket

    @property
    def filesystem(self) -> pafs.S3FileSystem:
        return s3_filesystem()

    def __str__(self) -> str:
        return SCHEME + self.fs_path

    def __repr__(self) -> str:
        return f"S3Path({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, S3Path) and (self.bucket, self.key) == (other.bucket, other.key)

    def __hash__(self) -> int:
        return hash((self.bucket, self.key))

    def __lt__(self, other: "S3Path") -> bool:
        return str(self) < str(other)

    def relative_to(self, other: "S3Path") -> PurePosixPath:
        return PurePosixPath(self.key).relative_to(other.key)

    # -- queries ---------------------------------------------------------------------------------
    def stat(self) -> os.stat_result:
        """Only ``st_size`` is meaningful (the object's size)."""
        info = self._info()
        if info.type == pafs.FileType.NotFound:
            raise access_error(self, FileNotFoundError(str(self)))
        return os.stat_result((0, 0, 0, 0, 0, 0, info.size or 0, 0, 0, 0))

    def _info(self) -> pafs.FileInfo:
        try:
            return self.filesystem.get_file_info(self.fs_path)
        except (OSError, pa.ArrowException) as exc:
            raise access_error(self, exc) from exc

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def iterdir(self) -> Iterator["S3Path"]:
        try:
            infos = self.filesystem.get_file_info(pafs.FileSelector(self.fs_path, allow_not_found=True))
        except (OSError, pa.ArrowException) as exc:
            raise access_error(self, exc) from exc
        for info in sorted(infos, key=lambda i: i.path):
            yield S3Path(self.bucket, info.path.split("/", 1)[1] if "/" in info.path else "")

    def glob(self, pattern: str) -> Iterator["S3Path"]:
        """``*/name`` or ``*.ext`` (the patterns the loader uses): one level of ``iterdir``."""
        head, _, tail = pattern.partition("/")
        for child in self.iterdir():
            if PurePosixPath(child.name).match(head):
                if not tail:
                    yield child
                elif (child / tail).is_file():
                    yield child / tail

    # -- content ---------------------------------------------------------------------------------
    def read_bytes(self) -> bytes:
        try:
            with self.filesystem.open_input_stream(self.fs_path) as fh:
                return fh.read()
        except (OSError, pa.ArrowException) as exc:
            raise access_error(self, exc) from exc

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        """One whole-object PUT: readers see the old object or the new one, never half (replaces fsync + rename)."""
        try:
            with self.filesystem.open_output_stream(self.fs_path) as fh:
                fh.write(data)
        except (OSError, pa.ArrowException) as exc:
            raise access_error(self, exc, writing=True) from exc
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Object stores have no directories: nothing to make."""

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.filesystem.delete_file(self.fs_path)
        except FileNotFoundError:
            if not missing_ok:
                raise
        except (OSError, pa.ArrowException) as exc:
            raise access_error(self, exc) from exc

    def remove_tree(self) -> None:
        try:
            self.filesystem.delete_dir(self.fs_path)
        except FileNotFoundError:
            pass
        except (OSError, pa.ArrowException) as exc:
            raise access_error(self, exc) from exc

    def open_input_file(self) -> pa.NativeFile:
        """A random-access handle for pyarrow's parquet reader (ranged GETs, memory stays bounded)."""
        try:
            return self.filesystem.open_input_file(self.fs_path)
        except (OSError, pa.ArrowException) as exc:
            raise access_error(self, exc) from exc

    def open_output_stream(self) -> pa.NativeFile:
        """A write stream (multipart upload); the object exists once the stream is closed."""
        try:
            return self.filesystem.open_output_stream(self.fs_path)
        except (OSError, pa.ArrowException) as exc:
            raise access_error(self, exc, writing=True) from exc


def access_error(path: S3Path, exc: BaseException, *, writing: bool = False) -> InputError:
    """A clear error for an object-store failure: the (redacted) URL, what went wrong and what to do."""
    text = redact(str(exc))
    lowered = text.lower()
    squeezed = lowered.replace("_", "").replace(" ", "")
    if "nosuchbucket" in squeezed or "bucketdoesnotexist" in squeezed:
        what = f"{'cannot be written' if writing else 'not found'}: bucket {path.bucket!r} does not exist"
        hint = f"check the bucket name in the URL, or create the bucket {path.bucket!r} first"
    elif isinstance(exc, FileNotFoundError) or "not found" in lowered or "nosuchkey" in lowered:
        hint = "check the data root URL and that the district was uploaded under it"
        what = "not found"
    elif any(s in squeezed for s in (
            "accessdenied", "forbidden", "invalidaccesskeyid", "signaturedoesnotmatch", "credentials", "403")):
        hint = ("check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile) and that they may read and "
                "write the bucket")
        what = "access refused"
    else:
        hint = ("check the endpoint (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL), the region (AWS_REGION) and that "
                "the object store is reachable")
        what = "cannot be written" if writing else "cannot be read"
    return InputError(f"object {path}: {what} ({text[:300]})", hint=hint)


def parquet_file_source(path: Any) -> Any:
    """What ``pyarrow.parquet`` opens for ``path``: the local path unchanged, or a random-access S3 file."""
    return path.open_input_file() if isinstance(path, S3Path) else path
