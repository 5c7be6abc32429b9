"""The adapter registry on a local folder and on a real S3 protocol server (moto over HTTP)."""

import json
import threading

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
    assert registry.resolve("a") == ("a", max(first, second))
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


@pytest.mark.parametrize("text", ["", "../etc", "a@", "a b", "a@../../x"])
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
