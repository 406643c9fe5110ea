"""Real object stores on 127.0.0.1 for the remote-storage tests, each started and stopped by a
fixture: S3 (moto in server mode), Google Cloud Storage (gcp-storage-emulator) and Azure Blob
Storage (Azurite, from the npm registry).

Nothing reaches a real cloud endpoint: each fixture points its driver at the local server through
the environment a user would set (``AWS_ENDPOINT_URL``, ``STORAGE_EMULATOR_HOST``,
``AZURE_STORAGE_CONNECTION_STRING``), with dummy or anonymous credentials, no cloud metadata
lookups and no telemetry. ``store`` runs a test once on each of the three.

Azurite is a Node.js program: :func:`azurite_command` finds it (``SEGCONVERT_AZURITE``, then
``.azurite/`` in the checkout, then ``azurite-blob`` on the PATH) or installs it into
``.azurite/`` with npm (``python tests/objectstores.py --install-azurite``, as ``.ci/run`` does).
Without node or npm the Azure tests skip saying so, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from processes import free_port, stop

REPO = Path(__file__).resolve().parent.parent

AZURITE_VERSION = "3.35.0"
"""Pinned: the newest Azurite that runs on Node 20 (3.36 wants Node 21, 3.37 Node 22)."""
AZURITE_HOME = REPO / ".azurite"
"""Where ``--install-azurite`` puts it (git-ignored)."""
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
"""Azurite's well-known development account (public, documented by Microsoft; not a secret)."""


@dataclass
class ObjectStore:
    """A running store: its URL scheme, endpoint, the environment a client needs, and an fsspec
    handle on it for the tests' own setting up and reading back."""

    scheme: str
    endpoint: str
    env: dict[str, str]
    options: dict[str, Any] = field(default_factory=dict)
    web_base: str | None = None
    """Where other programs find the objects when that is not the URL itself (Azure's blob
    service: ``http://127.0.0.1:PORT/devstoreaccount1``)."""

    @property
    def fs(self) -> Any:
        """A fresh filesystem on the store (no cached listings)."""
        import fsspec

        return fsspec.filesystem(self.scheme, skip_instance_cache=True, **self.options)

    def key(self, url: str) -> str:
        """``url`` without its scheme: the driver's own path (``bucket/key``)."""
        return url.removeprefix(f"{self.scheme}://")

    def object_url(self, url: str) -> str:
        """The URL a Nucleus export names the object at ``url`` by (see
        ``segconvert.object_url``): ``url`` itself, or its blob-service URL on Azure."""
        return f"{self.web_base}/{self.key(url)}" if self.web_base else url

    def bucket(self, name: str) -> str:
        """Bucket (container) ``name``, created or emptied; return its URL."""
        fs = self.fs
        if fs.exists(name):
            objects = fs.find(name)
            if objects:
                fs.rm(objects)
        else:
            fs.mkdir(name)
        return f"{self.scheme}://{name}"

    def upload(self, local: Path, url: str) -> str:
        """Copy a local file or folder to ``url`` (``SCHEME://bucket/key``); return ``url``."""
        fs = self.fs
        target = self.key(url).rstrip("/")
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
        base = self.key(url).rstrip("/")
        return {name[len(base) + 1 :]: fs.cat_file(name) for name in sorted(fs.find(base))}


# ---------------------------------------------------------------- running a server


@contextmanager
def client_environment(env: dict[str, str]) -> Iterator[None]:
    """Set ``env`` for this process and its children, and refresh fsspec's configuration from
    it (fsspec reads ``FSSPEC_*`` variables once, on import); restore both afterwards."""
    import fsspec.config

    saved = {key: os.environ.get(key) for key in env}
    saved_conf = copy.deepcopy(fsspec.config.conf)
    os.environ.update(env)
    fsspec.config.set_conf_env(fsspec.config.conf)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        fsspec.config.conf.clear()
        fsspec.config.conf.update(saved_conf)


@contextmanager
def server_process(name: str, command: list[str], port: int) -> Iterator[None]:
    """Run ``command`` (a server listening on 127.0.0.1:``port``) in a scratch folder until
    the block ends; fail, naming ``name``, if it does not listen within 60 s."""
    with (
        tempfile.TemporaryDirectory(prefix="segconvert-store-") as scratch,
        open(Path(scratch) / "server.log", "w+b") as log,  # a pipe would fill and block it
    ):
        process = subprocess.Popen(command, cwd=scratch, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        process.kill()
                        process.wait()
                        log.seek(0)
                        output = log.read().decode(errors="replace").strip()[-2000:]
                        raise RuntimeError(f"{name} did not start: {output}") from None
                    time.sleep(0.1)
            yield
        finally:
            stop([process], timeout=10)


def _forget_instances(scheme: str) -> None:
    """Drop fsspec's cached filesystems of ``scheme`` (they keep the endpoint they were made
    with, and the next server of that kind listens on another port)."""
    import fsspec

    fsspec.get_filesystem_class(scheme).clear_instance_cache()


@contextmanager
def moto_server() -> Iterator[ObjectStore]:
    """Run ``moto_server`` on a free loopback port with the client environment set (dummy
    credentials, ``AWS_ENDPOINT_URL``, no EC2 metadata)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": endpoint,
    }
    with server_process("moto_server", command, port), client_environment(env):
        try:
            yield ObjectStore("s3", endpoint, env, {"endpoint_url": endpoint})
        finally:
            _forget_instances("s3")


@contextmanager
def gcs_emulator() -> Iterator[ObjectStore]:
    """Run gcp-storage-emulator (in memory) on a free loopback port; gcsfs reaches it through
    ``STORAGE_EMULATOR_HOST``, anonymously (``FSSPEC_GCS_TOKEN=anon``: no credential lookup,
    no metadata server)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "gcp_storage_emulator", "start"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--in-memory"]
    env = {
        "STORAGE_EMULATOR_HOST": endpoint,
        "FSSPEC_GCS_TOKEN": "anon",
        "NO_GCE_CHECK": "true",
        # gcsfs >= 2026 asks a gRPC control API for each bucket's layout (hierarchical or
        # zonal) before using it; the emulator has no such API, and each ask waits 60 s for
        # its timeout. Off, gcsfs is the plain JSON-API client (read when gcsfs is imported).
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
    }
    with server_process("gcp-storage-emulator", command, port), client_environment(env):
        import gcsfs
        import gcsfs.core

        if gcsfs.GCSFileSystem is not gcsfs.core.GCSFileSystem:
            pytest.fail("gcsfs was imported before GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false was set")
        try:
            yield ObjectStore("gs", endpoint, env, {"endpoint_url": endpoint, "token": "anon"})
        finally:
            _forget_instances("gs")


@contextmanager
def azurite(command: list[str]) -> Iterator[ObjectStore]:
    """Run Azurite's blob service (``command``: node and its script) in memory on a free
    loopback port, telemetry off; adlfs reaches it through the dev account's connection string
    in ``AZURE_STORAGE_CONNECTION_STRING``."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    command = [*command, "--blobHost", "127.0.0.1", "--blobPort", str(port)]
    command += ["--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry", "--silent"]
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
    )
    env = {"AZURE_STORAGE_CONNECTION_STRING": connection}
    with server_process("azurite-blob", command, port), client_environment(env):
        try:
            yield ObjectStore("az", endpoint, env, {"connection_string": connection}, endpoint)
        finally:
            _forget_instances("az")


# ---------------------------------------------------------------- Azurite from npm


def _azurite_script(home: Path) -> Path:
    return home / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"


def installed_azurite(home: Path = AZURITE_HOME) -> str | None:
    """The version of Azurite installed in ``home``, or None."""
    try:
        package = json.loads((home / "node_modules" / "azurite" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    return str(package.get("version")) if _azurite_script(home).is_file() else None


def install_azurite(home: Path = AZURITE_HOME) -> None:
    """Install the pinned Azurite into ``home`` with npm, quietly; nothing to do when it is
    there already."""
    if installed_azurite(home) == AZURITE_VERSION:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: cannot install Azurite")
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--prefix", str(home), "--no-audit", "--no-fund", "--no-save"]
        + ["--loglevel=error", f"azurite@{AZURITE_VERSION}"],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=900,
    )


def azurite_command() -> list[str]:
    """How to run Azurite's blob service: ``SEGCONVERT_AZURITE`` (a path to ``azurite-blob``),
    else the copy in ``.azurite/`` (installed now with npm when absent), else ``azurite-blob``
    on the PATH. Skips the test when node or npm is absent (fails under ``CI=true``)."""
    explicit = os.environ.get("SEGCONVERT_AZURITE")
    if explicit:
        return [explicit]
    node = shutil.which("node")
    on_path = shutil.which("azurite-blob")
    if node is None or (shutil.which("npm") is None and on_path is None):
        reason = "the Azure Blob tests need Azurite, which needs node and npm (not found)"
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason}; CI must run them")
        pytest.skip(reason)
    if installed_azurite() is None and on_path is not None:
        return [on_path]
    install_azurite()
    return [node, str(_azurite_script(AZURITE_HOME))]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def s3() -> Iterator[ObjectStore]:
    """A moto S3 server on loopback for the module (skipped without s3fs and moto)."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    with moto_server() as server:
        yield server


@pytest.fixture(scope="module")
def gcs() -> Iterator[ObjectStore]:
    """A GCS emulator on loopback for the module (skipped without gcsfs and the emulator)."""
    pytest.importorskip("gcp_storage_emulator")
    if importlib.util.find_spec("gcsfs") is None:  # not imported: see gcs_emulator
        pytest.skip("gcsfs is not installed")
    with gcs_emulator() as server:
        yield server


@pytest.fixture(scope="module")
def azure() -> Iterator[ObjectStore]:
    """Azurite's blob service on loopback for the module (skipped without adlfs; Azurite
    installed from npm when absent)."""
    pytest.importorskip("adlfs")
    with azurite(azurite_command()) as server:
        yield server


STORES = {"s3": "s3", "gs": "gcs", "az": "azure"}
"""URL scheme -> the fixture of its server."""


@pytest.fixture(
    scope="module",
    # Azurite may have to come from the npm registry first
    params=["s3", "gs", pytest.param("az", marks=pytest.mark.network)],
)
def store(request: pytest.FixtureRequest) -> ObjectStore:
    """Each of the three stores in turn (test ids ``[s3]``, ``[gs]``, ``[az]``)."""
    return request.getfixturevalue(STORES[request.param])


def main() -> None:
    """``--install-azurite``: install the pinned Azurite into ``.azurite/`` (for ``.ci/run``)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--install-azurite", action="store_true", required=True)
    parser.parse_args()
    install_azurite()
    print(f"Azurite {installed_azurite()} in {AZURITE_HOME}")


if __name__ == "__main__":
    main()
