"""Two storage backends with one small interface: a local folder and S3 (boto3).

Keys are '/'-separated paths below the root. S3 credentials and endpoint come from the standard AWS
environment and config files (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_ENDPOINT_URL for MinIO or any
S3-compatible store), never from sqlfoundry config, so secrets are never logged or saved.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse


def absolute_local_path(value: str | None, only_if_exists: bool = False) -> str | None:
    """`value` made absolute when it is a local path; URIs (s3://...) and nothing pass unchanged.
    `only_if_exists` also leaves alone what is not on disk: a model's Hub id ("org/name") or a
    builtin alias reads like a relative path."""
    if not value or "://" in value or (only_if_exists and not Path(value).expanduser().exists()):
        return value
    return str(Path(value).expanduser().resolve())


class StorageError(RuntimeError):
    """A storage location that cannot be used, with what to fix in the message."""


_S3_FIXES = {
    "AccessDenied": "the credentials lack permission for this key: check the IAM policy / bucket policy",
    "InvalidAccessKeyId": "the AWS access key is unknown: check AWS_ACCESS_KEY_ID or AWS_PROFILE",
    "SignatureDoesNotMatch": "the AWS secret key is wrong: check AWS_SECRET_ACCESS_KEY",
    "NoSuchBucket": "the bucket does not exist: create it or fix the registry URI",
    "SlowDown": "S3 is throttling requests: retry later or spread the load",
    "Throttling": "S3 is throttling requests: retry later or spread the load",
    "RequestTimeout": "the request timed out: retry",
    "InternalError": "S3 had an internal error: retry",
    "ServiceUnavailable": "S3 is unavailable: retry later",
    "403": "access denied: check the credentials and the bucket policy",
    "404": "not found: check the registry URI",
}


class LocalStore:
    def __init__(self, root: str):
        self.root = Path(root).expanduser()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        """The file for `key`; a key that would leave the root ('..', absolute) is refused."""
        path = self.root / key
        root = self.root.resolve()
        resolved = path.resolve()
        if Path(key).is_absolute() or (resolved != root and root not in resolved.parents):
            raise StorageError(f"{self.root}: key {key!r} points outside the storage folder")
        return path

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"{self.root} is not writable")

    def put_file(self, source: Path, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    def put_bytes(self, data: bytes, key: str) -> None:
        """Atomic: readers see the old content or the new, never a partial file."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(scratch, target)

    def get_file(self, key: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._path(key), target)

    def get_bytes(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file()
                      and not p.name.startswith(".tmp-"))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Store:
    def __init__(self, uri: str):
        parsed = urlparse(uri)
        self.uri = uri.rstrip("/")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        import boto3

        # endpoint, region and credentials: the standard AWS chain (env, ~/.aws, instance role)
        self.client = boto3.session.Session().client("s3")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextlib.contextmanager
    def _call(self, action: str, key: str):
        """botocore errors as StorageError naming the bucket, the key and what to fix."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        where = f"s3://{self.bucket}/{self._key(key)}"
        try:
            yield
        except NoCredentialsError:
            raise StorageError(f"{action} {where}: no AWS credentials found (set AWS_ACCESS_KEY_ID/"
                               "AWS_SECRET_ACCESS_KEY or AWS_PROFILE)") from None
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "") or str(err)
            raise StorageError(f"{action} {where}: {code} ({_S3_FIXES.get(code, 'see the S3 error code')})") from None
        except BotoCoreError as err:
            raise StorageError(f"{action} {where}: cannot reach S3 ({type(err).__name__}); check AWS_ENDPOINT_URL "
                               "and the network, then retry") from None

    def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except NoCredentialsError:
            raise StorageError(f"{self.uri}: no AWS credentials found (set AWS_ACCESS_KEY_ID/"
                               "AWS_SECRET_ACCESS_KEY or AWS_PROFILE)") from None
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket"):
                raise StorageError(f"{self.uri}: bucket {self.bucket!r} does not exist; create it first") from None
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise StorageError(f"{self.uri}: access denied to bucket {self.bucket!r} ({code}); "
                                   "check the AWS credentials") from None
            raise StorageError(f"{self.uri}: {code or err}") from None
        except BotoCoreError as err:
            raise StorageError(f"{self.uri}: cannot reach S3 ({err})") from None

    def put_file(self, source: Path, key: str) -> None:
        with self._call("upload", key):
            self.client.upload_file(str(source), self.bucket, self._key(key))

    def put_bytes(self, data: bytes, key: str) -> None:
        with self._call("write", key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)  # atomic in S3

    def get_file(self, key: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._call("download", key):
            self.client.download_file(self.bucket, self._key(key), str(target))

    def get_bytes(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        with self._call("read", key):
            try:
                return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise

    def list(self, prefix: str) -> list[str]:
        keys = []
        strip = len(self.prefix) + 1 if self.prefix else 0
        with self._call("list", prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                              Prefix=self._key(prefix)):
                keys.extend(item["Key"][strip:] for item in page.get("Contents", []))
        return sorted(keys)

    def delete(self, key: str) -> None:
        with self._call("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


def open_store(uri: str) -> LocalStore | S3Store:
    """`s3://bucket/prefix`, `file:///path` or a plain path; anything else is refused."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StorageError(f"{uri}: expected s3://BUCKET/PREFIX")
        return S3Store(uri)
    if parsed.scheme == "file":
        return LocalStore(parsed.path)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return LocalStore(uri)
    raise StorageError(f"{uri}: unsupported storage scheme {parsed.scheme!r} (use a path, file:// or s3://)")
