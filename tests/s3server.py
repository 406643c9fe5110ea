"""A real S3-compatible server (moto in server mode) on 127.0.0.1 for the object-storage tests.

Nothing reaches a real cloud endpoint: the fixture points ``AWS_ENDPOINT_URL`` at the local
server, sets dummy credentials and turns the EC2 metadata lookup off.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    """A TCP port nothing listens on at the moment."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class S3Server:
    """The running server: its endpoint, the environment a client needs, and an fsspec handle."""

    endpoint: str
    env: dict[str, str]

    @property
    def fs(self) -> Any:
        """A fresh s3fs filesystem on the server (no cached listings)."""
        import s3fs

        return s3fs.S3FileSystem(endpoint_url=self.endpoint, skip_instance_cache=True)

    def bucket(self, name: str) -> str:
        """Create bucket ``name`` (empty) and return ``s3://name``."""
        fs = self.fs
        if fs.exists(name):
            fs.rm(name, recursive=True)
        fs.mkdir(name)
        return f"s3://{name}"

    def upload(self, local: Path, url: str) -> str:
        """Copy a local file or folder to ``url`` (``s3://bucket/key``); return ``url``."""
        fs = self.fs
        target = url.removeprefix("s3://")
        if local.is_dir():
            for path in sorted(local.rglob("*")):
                if path.is_file():
                    fs.put_file(str(path), f"{target}/{path.relative_to(local).as_posix()}")
        else:
            fs.put_file(str(local), target)
        return url

    def tree(self, url: str) -> dict[str, bytes]:
        """Every object under ``url``: key relative to it -> bytes."""
        fs = self.fs
        base = url.removeprefix("s3://").rstrip("/")
        return {name[len(base) + 1 :]: fs.cat_file(name) for name in sorted(fs.find(base))}


@contextmanager
def moto_server() -> Iterator[S3Server]:
    """Run ``moto_server`` on a free loopback port with the client environment set (dummy
    credentials, ``AWS_ENDPOINT_URL``, no EC2 metadata); stop it and restore the environment."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": endpoint,
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield S3Server(endpoint, env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """A moto S3 server on loopback for the session (skipped without s3fs and moto)."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    with moto_server() as server:
        yield server
