"""The adapter registry on a local folder and on a real S3 protocol server (moto over HTTP)."""

import hashlib
import json
import threading
from pathlib import Path

import boto3
import pytest

from sqlfoundry.storage.backends import StorageError, open_store
from sqlfoundry.storage.registry import AdapterRef, ChecksumError, Registry, RegistryError


@pytest.fixture()
def adapter_dir(tmp_path):
    folder = tmp_path / "adapter"
    (folder / "sub").mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"\x00weights" * 1000)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 8}))
    (folder / "sub" / "tokenizer.json").write_text("{}")
    return folder


@pytest.fixture(params=["local", "s3"])
def registry(request, tmp_path):
    if request.param == "local":
        return Registry(str(tmp_path / "registry"))
    bucket = request.getfixturevalue("s3_bucket")
    return Registry(f"s3://{bucket}/team-a")


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_push_pull_roundtrip_byte_identical(registry, adapter_dir, tmp_path):
    version = registry.push(adapter_dir, "sql-smol", {"base_model": "smollm2-135m-instruct", "metrics": {"ex": 0.5}})
    assert registry.names() == ["sql-smol"] and registry.versions("sql-smol") == [version]
    manifest = registry.manifest("sql-smol", version)
    assert set(manifest["files"]) == {"adapter_model.safetensors", "adapter_config.json", "sub/tokenizer.json"}
    assert manifest["files"]["adapter_config.json"]["size"] == len(json.dumps({"r": 8}))
    pulled, _ = registry.pull("sql-smol", tmp_path / "pulled")
    assert {k: v for k, v in _files(pulled).items() if k != "manifest.json"} == _files(adapter_dir)


def test_version_without_manifest_is_invisible(registry, adapter_dir):
    version = registry.push(adapter_dir, "a")
    registry.store.delete(f"adapters/a/{version}/manifest.json")  # as if the upload crashed before it
    assert registry.versions("a") == [] and registry.names() == []
    with pytest.raises(RegistryError, match="no published versions"):
        registry.resolve("a")


def test_checksum_mismatch_is_refused(registry, adapter_dir, tmp_path):
    version = registry.push(adapter_dir, "a")
    registry.store.put_bytes(b"tampered", f"adapters/a/{version}/adapter_config.json")
    with pytest.raises(ChecksumError, match="adapter_config.json"):
        registry.pull(f"a@{version}", tmp_path / "pulled")
    assert not (tmp_path / "pulled").exists()


def test_concurrent_pushes_get_distinct_versions(registry, adapter_dir):
    versions, errors = [], []

    def push():
        try:
            versions.append(registry.push(adapter_dir, "same"))
        except Exception as err:  # noqa: BLE001 - surfaced by the assert below
            errors.append(err)

    threads = [threading.Thread(target=push) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(versions)) == 6
    assert sorted(registry.versions("same")) == sorted(versions)


def test_alias_promotion_and_resolution(registry, adapter_dir, tmp_path):
    first = registry.push(adapter_dir, "a")
    second = registry.push(adapter_dir, "a")
    registry.promote("a", first, "production")
    assert registry.resolve("a@production") == ("a", first)
    assert registry.resolve("a") == ("a", second)  # the last push, not the larger random suffix
    registry.promote("a", second, "production")
    assert registry.resolve("a@production") == ("a", second)
    _, manifest = registry.pull("a@production", tmp_path / "p")
    assert manifest["version"] == second
    with pytest.raises(RegistryError, match="not published"):
        registry.promote("a", "20990101T000000-abcdef", "production")
    registry.delete("a", second)
    assert registry.versions("a") == [first] and "production" not in registry.aliases("a")


@pytest.mark.parametrize("text, ref", [
    ("a", AdapterRef("a")), ("a@production", AdapterRef("a", alias="production")),
    ("a@20260101T000000-abc123", AdapterRef("a", version="20260101T000000-abc123")),
])
def test_refs(text, ref):
    assert AdapterRef.parse(text) == ref


@pytest.mark.parametrize("text", ["", "../etc", "a@", "a b", "a@../../x", "a\n", "a@production\n",
                                  "a@2026", "a@20260101T000000-abc123/../x", "a@b@c", ".hidden"])
def test_bad_refs(text):
    with pytest.raises(RegistryError):
        AdapterRef.parse(text)


def test_bad_storage_locations(s3_server, tmp_path, monkeypatch):
    with pytest.raises(StorageError, match="unsupported storage scheme 'gs'"):
        open_store("gs://bucket/x")
    with pytest.raises(StorageError, match="does not exist"):
        open_store("s3://no-such-bucket-here/x").check()
    bucket = f"creds-{id(tmp_path)}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StorageError, match="no AWS credentials"):
        open_store(f"s3://{bucket}/x").check()


def test_versions_sort_in_push_order(registry, adapter_dir):
    """Many pushes inside one second: "latest" is still the last push."""
    pushed = [registry.push(adapter_dir, "fast") for _ in range(12)]
    assert registry.versions("fast") == pushed
    assert registry.resolve("fast") == ("fast", pushed[-1])


def test_old_style_versions_sort_before_new_ones(tmp_path, adapter_dir):
    registry = Registry(str(tmp_path / "registry"))
    new = registry.push(adapter_dir, "a")
    old = "20200101T000000-abc123"  # the format before nanoseconds
    registry.store.put_bytes(registry.store.get_bytes(f"adapters/a/{new}/manifest.json"), f"adapters/a/{old}/manifest.json")
    assert registry.versions("a") == [old, new]


def test_alias_named_like_the_layout_does_not_become_a_version(registry, adapter_dir):
    version = registry.push(adapter_dir, "a")
    for alias in ("manifest", "aliases"):
        registry.promote("a", version, alias)
    assert registry.versions("a") == [version] and registry.names() == ["a"]
    assert registry.resolve("a") == ("a", version) and registry.resolve("a@manifest") == ("a", version)


@pytest.mark.parametrize("target", ["../../../etc", "aliases", "", None, 7, "20260101T000000-abc123/../../x"])
def test_alias_files_must_name_a_version(registry, adapter_dir, target):
    registry.push(adapter_dir, "a")
    registry.store.put_bytes(json.dumps({"version": target}).encode(), "adapters/a/aliases/evil.json")
    assert "evil" not in registry.aliases("a")
    with pytest.raises(RegistryError, match="no alias 'evil'"):
        registry.resolve("a@evil")


@pytest.mark.parametrize("entry", [
    "/tmp/sqlfoundry-escape.txt", "../escape.txt", "sub/../../escape.txt", "../../../../../../tmp/escape.txt",
    "sub\\..\\escape.txt", "", ".", "./adapter_config.json", "sub//x", "manifest.json", "C:/escape.txt",
])
def test_malicious_manifest_entries_are_refused(registry, adapter_dir, tmp_path, entry):
    version = registry.push(adapter_dir, "a")
    manifest = registry.manifest("a", version)
    payload = b"evil"
    manifest["files"][entry] = {"sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)}
    if registry.root.startswith("s3://"):  # S3 takes any key: the object really is there
        registry.store.put_bytes(payload, f"adapters/a/{version}/{entry}")
    registry.store.put_bytes(json.dumps(manifest).encode(), f"adapters/a/{version}/manifest.json")
    target = tmp_path / "deep" / "pulled"
    target.parent.mkdir()
    with pytest.raises(RegistryError, match="manifest entry"):
        registry.pull(f"a@{version}", target)
    assert not target.exists() and list(target.parent.iterdir()) == []  # nothing left behind, scratch included
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/sqlfoundry-escape.txt").exists()
    with pytest.raises(RegistryError, match="manifest entry"):
        registry.delete("a", version)
    assert registry.versions("a") == [version]  # delete refused before removing anything


def test_local_store_keys_stay_inside_the_root(tmp_path):
    store = open_store(str(tmp_path / "root"))
    for key in ("../outside.txt", "/tmp/outside.txt", "a/../../outside.txt"):
        with pytest.raises(StorageError, match="outside the storage folder"):
            store.put_bytes(b"x", key)
    assert not (tmp_path / "outside.txt").exists()


def test_s3_failures_become_registry_errors(s3_server, monkeypatch):
    with pytest.raises(RegistryError, match=r"s3://no-such-bucket-registry/team/adapters/.*NoSuchBucket.*create it"):
        Registry("s3://no-such-bucket-registry/team").versions("a")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(RegistryError, match="cannot reach S3.*AWS_ENDPOINT_URL"):
        Registry("s3://some-bucket/team").versions("a")
