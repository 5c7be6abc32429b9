"""The adapter registry: immutable, checksummed adapter versions in object storage, with aliases.

Layout under the root (a folder or s3://bucket/prefix):

    adapters/<name>/<version>/<files...>        adapter weights, tokenizer, sqlfoundry_model.json
    adapters/<name>/<version>/manifest.json     written LAST: sha256 + size of every file, metadata
    adapters/<name>/aliases/<alias>.json        {"version": ...}, replaced atomically by promote

A version without a manifest is invisible, so a crashed upload never looks published. Versions are
named by UTC time to the nanosecond (made strictly increasing within a process) plus a random
suffix: they sort in push order, concurrent pushes of one name never collide, and a push never
writes into an existing version.

Everything read back from storage is untrusted (whoever can write the bucket can write a manifest):
manifest entries must be relative POSIX paths inside the version, alias targets must be version
ids, and a key is a version only when it has the version layout, so no name can collide with it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlfoundry import __version__
from sqlfoundry.storage.backends import LocalStore, S3Store, StorageError, open_store

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# 20261201T192512.123456789-ab12cd; versions written before nanoseconds (20261201T192512-ab12cd)
# still parse and sort before any later push.
_VERSION = re.compile(r"\d{8}T\d{6}(\.\d{9})?-[0-9a-f]{6}")
_last_version_ns = 0
_version_lock = threading.Lock()


class RegistryError(RuntimeError):
    pass


class ChecksumError(RegistryError):
    pass


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise RegistryError(f"invalid {kind} {value!r}: use letters, digits, '.', '_' and '-' (max 128)")
    return value


def _new_version() -> str:
    """A version id that sorts after every earlier one from this process, even within a second."""
    global _last_version_ns
    with _version_lock:
        _last_version_ns = max(time.time_ns(), _last_version_ns + 1)
        ns = _last_version_ns
    stamp = _dt.datetime.fromtimestamp(ns // 1_000_000_000, _dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}.{ns % 1_000_000_000:09d}-{secrets.token_hex(3)}"


def is_version(text: str) -> bool:
    return isinstance(text, str) and _VERSION.fullmatch(text) is not None


def check_entry(name: str, version: str, relative: object) -> str:
    """A manifest entry must be a relative POSIX path that stays inside its version folder."""
    parts = relative.split("/") if isinstance(relative, str) else []
    if (not parts or relative.startswith("/") or "\\" in relative or "\x00" in relative
            or any(part in ("", ".", "..") for part in parts) or relative == MANIFEST
            or PurePosixPath(relative).is_absolute() or re.match(r"[A-Za-z]:", relative)):
        raise RegistryError(f"adapter {name}@{version}: manifest entry {relative!r} is not a relative path inside "
                            "the version (absolute, '..', '.', empty or backslash segments are refused); "
                            "the registry may have been tampered with: re-push the adapter")
    return relative


@dataclass(frozen=True)
class AdapterRef:
    name: str
    version: str | None = None  # None = latest
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> "AdapterRef":
        """`name`, `name@version` or `name@alias` (versions start with a digit, aliases do not)."""
        if not isinstance(text, str):
            raise RegistryError(f"invalid adapter reference {text!r}: expected name, name@version or name@alias")
        name, at, tag = text.partition("@")
        _check_name("adapter name", name)
        if not at:
            return cls(name)
        _check_name("version or alias", tag)
        if tag[0].isdigit():
            if not is_version(tag):
                raise RegistryError(f"invalid version {tag!r}: versions look like 20261201T192512.123456789-ab12cd")
            return cls(name, version=tag)
        return cls(name, alias=tag)


class Registry:
    def __init__(self, root: str):
        self.store: LocalStore | S3Store = open_store(root)
        self.root = root

    def check(self) -> None:
        with self._storage():
            self.store.check()

    @contextlib.contextmanager
    def _storage(self):
        """Storage failures (S3 denied, throttled, unreachable; local I/O) as RegistryError."""
        try:
            yield
        except (RegistryError, StorageError) as err:
            raise err if isinstance(err, RegistryError) else RegistryError(str(err)) from None
        except OSError as err:
            raise RegistryError(f"registry {self.root}: {err}") from None

    # -- writing -------------------------------------------------------------------------------
    def push(self, adapter_dir: str | Path, name: str, metadata: dict | None = None) -> str:
        """Upload a folder as a new version of `name`; returns the version."""
        _check_name("adapter name", name)
        adapter_dir = Path(adapter_dir)
        files = sorted(p for p in adapter_dir.rglob("*") if p.is_file())
        if not files:
            raise RegistryError(f"{adapter_dir} has no files to push")
        version = _new_version()
        prefix = f"adapters/{name}/{version}"
        entries = {}
        with self._storage():
            for path in files:
                relative = path.relative_to(adapter_dir).as_posix()
                if relative == MANIFEST:
                    continue
                self.store.put_file(path, f"{prefix}/{relative}")
                entries[relative] = {"sha256": sha256_file(path), "size": path.stat().st_size}
            manifest = {
                "name": name, "version": version, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
                "sqlfoundry_version": __version__, "files": entries, **(metadata or {}),
            }
            self.store.put_bytes(json.dumps(manifest, indent=2, default=str).encode(), f"{prefix}/{MANIFEST}")
        return version

    def promote(self, name: str, version: str, alias: str) -> None:
        _check_name("alias", alias)
        if alias[0].isdigit():
            raise RegistryError(f"alias {alias!r} must not start with a digit (that reads as a version)")
        self.manifest(name, version)  # refuses unpublished or unknown versions
        with self._storage():
            self.store.put_bytes(json.dumps({"version": version}).encode(), f"adapters/{name}/aliases/{alias}.json")

    def delete(self, name: str, version: str) -> None:
        """Unpublish first (manifest), then remove the files; aliases pointing at it are removed.
        Every manifest entry is checked before anything is deleted."""
        manifest = self.manifest(name, version)
        prefix = f"adapters/{name}/{version}"
        entries = [check_entry(name, version, relative) for relative in manifest["files"]]
        with self._storage():
            self.store.delete(f"{prefix}/{MANIFEST}")
            for relative in entries:
                self.store.delete(f"{prefix}/{relative}")
            for alias, target in self.aliases(name).items():
                if target == version:
                    self.store.delete(f"adapters/{name}/aliases/{alias}.json")

    # -- reading -------------------------------------------------------------------------------
    @staticmethod
    def _published(key: str) -> tuple[str, str] | None:
        """(name, version) when `key` is adapters/<name>/<version>/manifest.json, else None."""
        parts = key.split("/")
        if len(parts) == 4 and parts[0] == "adapters" and parts[3] == MANIFEST and is_version(parts[2]) \
                and _NAME.fullmatch(parts[1]):
            return parts[1], parts[2]
        return None

    def names(self) -> list[str]:
        with self._storage():
            keys = self.store.list("adapters/")
        return sorted({found[0] for found in map(self._published, keys) if found})

    def versions(self, name: str) -> list[str]:
        """Published versions, oldest push first."""
        _check_name("adapter name", name)
        with self._storage():
            keys = self.store.list(f"adapters/{name}/")
        return sorted(found[1] for found in map(self._published, keys) if found and found[0] == name)

    def aliases(self, name: str) -> dict[str, str]:
        """alias -> version; an alias file that does not name a version id is ignored (and logged)."""
        _check_name("adapter name", name)
        result = {}
        with self._storage():
            for key in self.store.list(f"adapters/{name}/aliases/"):
                alias = key.rsplit("/", 1)[-1].removesuffix(".json")
                if key.count("/") != 3 or not key.endswith(".json") or not _NAME.fullmatch(alias):
                    continue
                try:
                    target = json.loads(self.store.get_bytes(key) or b"null")["version"]
                except (ValueError, TypeError, KeyError):
                    target = None
                if is_version(target):
                    result[alias] = target
                else:
                    log.warning("ignoring alias %s/%s: its file does not name a version", name, alias)
        return result

    def manifest(self, name: str, version: str) -> dict:
        _check_name("adapter name", name)
        if not is_version(version):
            raise RegistryError(f"invalid version {version!r} of adapter {name}")
        with self._storage():
            data = self.store.get_bytes(f"adapters/{name}/{version}/{MANIFEST}")
        if data is None:
            raise RegistryError(f"adapter {name}@{version} is not published in {self.root}")
        try:
            manifest = json.loads(data)
        except ValueError:
            raise RegistryError(f"adapter {name}@{version}: manifest is not JSON; re-push the adapter") from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise RegistryError(f"adapter {name}@{version}: manifest has no 'files' table; re-push the adapter")
        return manifest

    def resolve(self, ref: AdapterRef | str) -> tuple[str, str]:
        ref = AdapterRef.parse(ref) if isinstance(ref, str) else ref
        if ref.alias:
            version = self.aliases(ref.name).get(ref.alias)
            if version is None:
                raise RegistryError(f"adapter {ref.name} has no alias {ref.alias!r} in {self.root}")
            return ref.name, version
        if ref.version:
            return ref.name, ref.version
        versions = self.versions(ref.name)
        if not versions:
            raise RegistryError(f"no published versions of adapter {ref.name!r} in {self.root}")
        return ref.name, versions[-1]

    def pull(self, ref: AdapterRef | str, target: str | Path) -> tuple[Path, dict]:
        """Download and verify every file's sha256; on any mismatch nothing is left at `target`.
        Every manifest entry is checked before the first download."""
        name, version = self.resolve(ref)
        manifest = self.manifest(name, version)
        entries = {check_entry(name, version, relative): expected for relative, expected in manifest["files"].items()}
        target = Path(target)
        scratch = Path(tempfile.mkdtemp(prefix=".pull-", dir=target.parent if target.parent.exists() else None))
        try:
            with self._storage():
                for relative, expected in entries.items():
                    local = scratch / relative
                    self.store.get_file(f"adapters/{name}/{version}/{relative}", local)
                    actual = sha256_file(local)
                    if not isinstance(expected, dict) or actual != expected.get("sha256"):
                        raise ChecksumError(f"{name}@{version}/{relative}: sha256 {actual} does not match the "
                                            f"manifest; refusing to use this adapter")
            (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2))
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(scratch), target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return target, manifest


__all__ = ["AdapterRef", "ChecksumError", "Registry", "RegistryError", "StorageError", "sha256_file"]
