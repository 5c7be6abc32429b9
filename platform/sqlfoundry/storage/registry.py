"""The adapter registry: immutable, checksummed adapter versions in object storage, with aliases.

Layout under the root (a folder or s3://bucket/prefix):

    adapters/<name>/<version>/<files...>        adapter weights, tokenizer, sqlfoundry_model.json
    adapters/<name>/<version>/manifest.json     written LAST: sha256 + size of every file, metadata
    adapters/<name>/aliases/<alias>.json        {"version": ...}, replaced atomically by promote

A version without a manifest is invisible, so a crashed upload never looks published. Versions are
named by UTC time plus a random suffix, so concurrent pushes of one name never collide, and a push
never writes into an existing version.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlfoundry import __version__
from sqlfoundry.storage.backends import LocalStore, S3Store, StorageError, open_store

MANIFEST = "manifest.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


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
    if not _NAME.match(value):
        raise RegistryError(f"invalid {kind} {value!r}: use letters, digits, '.', '_' and '-' (max 128)")
    return value


@dataclass(frozen=True)
class AdapterRef:
    name: str
    version: str | None = None  # None = latest
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> "AdapterRef":
        """`name`, `name@version` or `name@alias` (versions start with a digit, aliases do not)."""
        name, at, tag = text.partition("@")
        _check_name("adapter name", name)
        if not at:
            return cls(name)
        _check_name("version or alias", tag)
        return cls(name, version=tag) if tag[0].isdigit() else cls(name, alias=tag)


class Registry:
    def __init__(self, root: str):
        self.store: LocalStore | S3Store = open_store(root)
        self.root = root

    def check(self) -> None:
        self.store.check()

    # -- writing -------------------------------------------------------------------------------
    def push(self, adapter_dir: str | Path, name: str, metadata: dict | None = None) -> str:
        """Upload a folder as a new version of `name`; returns the version."""
        _check_name("adapter name", name)
        adapter_dir = Path(adapter_dir)
        files = sorted(p for p in adapter_dir.rglob("*") if p.is_file())
        if not files:
            raise RegistryError(f"{adapter_dir} has no files to push")
        now = _dt.datetime.now(_dt.timezone.utc)
        version = now.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        prefix = f"adapters/{name}/{version}"
        entries = {}
        for path in files:
            relative = path.relative_to(adapter_dir).as_posix()
            if relative == MANIFEST:
                continue
            self.store.put_file(path, f"{prefix}/{relative}")
            entries[relative] = {"sha256": sha256_file(path), "size": path.stat().st_size}
        manifest = {
            "name": name, "version": version, "created": now.isoformat(), "sqlfoundry_version": __version__,
            "files": entries, **(metadata or {}),
        }
        self.store.put_bytes(json.dumps(manifest, indent=2, default=str).encode(), f"{prefix}/{MANIFEST}")
        return version

    def promote(self, name: str, version: str, alias: str) -> None:
        _check_name("alias", alias)
        if alias[0].isdigit():
            raise RegistryError(f"alias {alias!r} must not start with a digit (that reads as a version)")
        self.manifest(name, version)  # refuses unpublished or unknown versions
        self.store.put_bytes(json.dumps({"version": version}).encode(), f"adapters/{name}/aliases/{alias}.json")

    def delete(self, name: str, version: str) -> None:
        """Unpublish first (manifest), then remove the files; aliases pointing at it are removed."""
        manifest = self.manifest(name, version)
        prefix = f"adapters/{name}/{version}"
        self.store.delete(f"{prefix}/{MANIFEST}")
        for relative in manifest["files"]:
            self.store.delete(f"{prefix}/{relative}")
        for alias, target in self.aliases(name).items():
            if target == version:
                self.store.delete(f"adapters/{name}/aliases/{alias}.json")

    # -- reading -------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted({key.split("/")[1] for key in self.store.list("adapters/") if key.endswith(f"/{MANIFEST}")})

    def versions(self, name: str) -> list[str]:
        """Published versions, oldest first."""
        keys = self.store.list(f"adapters/{name}/")
        return sorted(key.split("/")[2] for key in keys if key.endswith(f"/{MANIFEST}") and key.count("/") == 3)

    def aliases(self, name: str) -> dict[str, str]:
        result = {}
        for key in self.store.list(f"adapters/{name}/aliases/"):
            data = self.store.get_bytes(key)
            if data:
                result[Path(key).stem] = json.loads(data)["version"]
        return result

    def manifest(self, name: str, version: str) -> dict:
        data = self.store.get_bytes(f"adapters/{name}/{version}/{MANIFEST}")
        if data is None:
            raise RegistryError(f"adapter {name}@{version} is not published in {self.root}")
        return json.loads(data)

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
        """Download and verify every file's sha256; on any mismatch nothing is left at `target`."""
        name, version = self.resolve(ref)
        manifest = self.manifest(name, version)
        target = Path(target)
        scratch = Path(tempfile.mkdtemp(prefix=".pull-", dir=target.parent if target.parent.exists() else None))
        try:
            for relative, expected in manifest["files"].items():
                local = scratch / relative
                self.store.get_file(f"adapters/{name}/{version}/{relative}", local)
                actual = sha256_file(local)
                if actual != expected["sha256"]:
                    raise ChecksumError(f"{name}@{version}/{relative}: sha256 {actual} does not match the "
                                        f"manifest ({expected['sha256']}); refusing to use this adapter")
            (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2))
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(scratch), target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return target, manifest


__all__ = ["AdapterRef", "ChecksumError", "Registry", "RegistryError", "StorageError", "sha256_file"]
