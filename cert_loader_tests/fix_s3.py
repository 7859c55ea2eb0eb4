"""A local S3-compatible server (moto in server mode) on a free loopback port, and districts uploaded to it."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from typing import Iterator

import pyarrow.fs as pafs
import pytest

S3_KEY_ID = "testing-key-id"
S3_SECRET = "testing-secret-key"
S3_REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def s3_env(endpoint: str, **override: str) -> dict[str, str]:
    """The AWS variables a user exports to reach ``endpoint`` (no shared config or profile files read)."""
    env = {"AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_REGION": S3_REGION,
           "AWS_ENDPOINT_URL": endpoint, "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    env.update(override)
    return env


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto server started for the module and stopped at its end."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch) -> str:
    """A new bucket on the server, with this process's AWS environment pointing at it; its name."""
    for name, value in s3_env(s3_server).items():
        monkeypatch.setenv(name, value)
    bucket = f"cert-{secrets.token_hex(4)}"
    bucket_fs(s3_server).create_dir(bucket)
    return bucket


def bucket_fs(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(access_key=S3_KEY_ID, secret_key=S3_SECRET, region=S3_REGION,
                             endpoint_override=endpoint.split("://", 1)[1], scheme="http",
                             allow_bucket_creation=True)


def upload_tree(endpoint: str, local: Path, bucket: str, prefix: str) -> list[str]:
    """Copy every file under ``local`` to ``bucket/prefix``; the keys written."""
    fs = bucket_fs(endpoint)
    keys = []
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        key = f"{bucket}/{prefix}/{path.relative_to(local).as_posix()}"
        with fs.open_output_stream(key) as out:
            out.write(path.read_bytes())
        keys.append(key)
    return keys


def list_keys(endpoint: str, bucket: str, prefix: str) -> list[str]:
    fs = bucket_fs(endpoint)
    infos = fs.get_file_info(pafs.FileSelector(f"{bucket}/{prefix}", recursive=True, allow_not_found=True))
    return sorted(i.path.split("/", 1)[1] for i in infos if i.type == pafs.FileType.File)
