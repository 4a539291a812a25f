"""A snapshot store in an S3-compatible bucket, through ``obstore`` (SPEC §9).

``obstore`` wraps the Rust ``object_store`` crate that Polars itself uses for cloud I/O, and Polars scans the same
objects natively. Endpoint and credentials come from the standard ``AWS_*`` variables, read by those libraries the
way every AWS tool reads them; this module never logs or formats them, and its errors name only the
``s3://bucket/prefix`` location.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.sinks.snapshot_store import StoreError, UnsafeKeyError, checked_key, checked_prefix


def _object_store_error(location: str, error: Exception) -> StoreError:
    """A StoreError naming the location and the failure's kind; the library's text is kept only when it
    carries no credential (it names the request URL, never the secret key, but be explicit about it)."""
    text = str(error)
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if secret and secret in text:
        text = text.replace(secret, "***")
    return StoreError(f"object store {location}: {type(error).__name__}: {text.splitlines()[0] if text else ''}")


class ObjectStore:
    """An S3-compatible bucket (AWS S3, Cloudflare R2, MinIO) under ``s3://bucket/prefix``.

    Objects are put whole, so there is no ``.tmp`` step: an object is either absent or complete. Conditional
    writes (``If-None-Match: *`` and ``If-Match: <etag>``) carry the lock object (``snapshot_lock``).
    """

    def __init__(self, location: str) -> None:
        # imported here, as in every method below: a folder store (the default) never pays for loading obstore
        from obstore.store import S3Store

        bucket_and_prefix = location.removeprefix("s3://").strip("/")
        bucket, _, prefix = bucket_and_prefix.partition("/")
        if not bucket:
            raise ValueError(f"SNAPSHOT_DIR {location!r} names no bucket; expected s3://bucket/prefix")
        self.location = f"s3://{bucket_and_prefix}"
        self.bucket = bucket
        self.prefix = prefix
        # allow_http: a plain-http endpoint (MinIO or a test server on 127.0.0.1) is the user's explicit choice in
        # AWS_ENDPOINT_URL; the default AWS endpoint is https either way.
        self._store = S3Store(bucket, prefix=prefix or None, client_options={"allow_http": True})
        self.storage_options: dict[str, str] | None = _polars_storage_options()

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}{checked_key(key)}"

    def put(self, key: str, data: bytes) -> None:
        import obstore

        key = checked_key(key)
        try:
            obstore.put(self._store, key, data)
        except Exception as error:
            raise _object_store_error(self.location, error) from None

    def put_written(self, key: str, write: Callable[[str], None]) -> None:
        # written into a local file first: an object is put whole (a temporary folder is removed on any failure)
        with tempfile.TemporaryDirectory(prefix="horde-analytics-put-") as folder:
            local = Path(folder) / "object"
            write(str(local))
            self.put(key, local.read_bytes())

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        key = checked_key(key)
        try:  # If-None-Match: *
            result = obstore.put(self._store, key, data, mode="create")
        except (AlreadyExistsError, PreconditionError):
            return None
        except Exception as error:
            raise _object_store_error(self.location, error) from None
        return str(result["e_tag"])

    def replace_if_unchanged(self, key: str, data: bytes, version: str) -> str | None:
        import obstore
        from obstore.exceptions import AlreadyExistsError, NotFoundError, PreconditionError

        key = checked_key(key)
        try:  # If-Match: <etag>
            result = obstore.put(self._store, key, data, mode={"e_tag": version})
        except (AlreadyExistsError, PreconditionError, NotFoundError, FileNotFoundError):
            return None
        except Exception as error:
            raise _object_store_error(self.location, error) from None
        return str(result["e_tag"])

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        data, _ = self._get(key, max_bytes)
        return data

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        data, version = self._get(key, None)
        return data, version

    def _get(self, key: str, max_bytes: int | None) -> tuple[bytes, str]:
        import obstore
        from obstore.exceptions import NotFoundError

        key = checked_key(key)
        try:
            result = obstore.get(self._store, key)
            meta: Any = result.meta
            if max_bytes is not None and meta["size"] > max_bytes:
                raise StoreError(f"{self._url(key)} is larger than {max_bytes} bytes")
            return bytes(result.bytes()), str(meta["e_tag"])
        except (NotFoundError, FileNotFoundError):
            raise FileNotFoundError(f"{self._url(key)} does not exist") from None
        except StoreError:
            raise
        except Exception as error:
            raise _object_store_error(self.location, error) from None

    def list_after(self, prefix: str, start_after: str) -> list[str]:
        import obstore

        prefix = checked_prefix(prefix)
        try:  # S3 ListObjectsV2 with StartAfter: the names before it are never sent
            listed = obstore.list(self._store, prefix=prefix or None, offset=start_after)
            keys = [str(meta["path"]) for batch in listed for meta in batch]
        except Exception as error:
            raise _object_store_error(self.location, error) from None
        depth = prefix.count("/") + 1 if prefix else 0
        return sorted(key for key in keys if key.count("/") == depth)  # direct entries only, as list(recursive=False)

    def list(self, prefix: str, *, recursive: bool = True) -> list[str]:
        import obstore

        prefix = checked_prefix(prefix)
        try:
            if recursive:
                keys = [str(meta["path"]) for batch in obstore.list(self._store, prefix=prefix) for meta in batch]
            else:
                listing = obstore.list_with_delimiter(self._store, prefix=prefix or None)
                keys = [str(meta["path"]) for meta in listing["objects"]]
        except Exception as error:
            raise _object_store_error(self.location, error) from None
        return sorted(keys)

    def versions(self, prefix: str) -> dict[str, str]:
        import obstore

        prefix = checked_prefix(prefix)
        try:
            listing = obstore.list_with_delimiter(self._store, prefix=prefix or None)
        except Exception as error:
            raise _object_store_error(self.location, error) from None
        return {str(meta["path"]): str(meta["e_tag"]) for meta in sorted(listing["objects"], key=_path_of)}

    def version(self, key: str) -> str | None:
        import obstore
        from obstore.exceptions import NotFoundError

        key = checked_key(key)
        try:
            meta: Any = obstore.head(self._store, key)
        except (NotFoundError, FileNotFoundError):
            return None
        except Exception as error:
            raise _object_store_error(self.location, error) from None
        return str(meta["e_tag"])

    def remove_empty(self, prefix: str) -> None:
        checked_key(prefix)  # objects only: a "folder" is gone with its last object

    def delete(self, key: str) -> None:
        import obstore
        from obstore.exceptions import NotFoundError

        key = checked_key(key)
        try:
            obstore.delete(self._store, key)
        except (NotFoundError, FileNotFoundError):
            pass
        except Exception as error:
            raise _object_store_error(self.location, error) from None

    def delete_all(self, keys: Sequence[str]) -> None:
        import obstore

        if not keys:
            return
        try:  # S3 DeleteObjects, 1,000 keys a request; keys already gone are no error
            obstore.delete(self._store, [checked_key(key) for key in keys])
        except Exception as error:
            raise _object_store_error(self.location, error) from None

    def scan_target(self, key: str) -> str:
        return self._url(key)

    def exists(self, key: str) -> bool:
        import obstore
        from obstore.exceptions import NotFoundError

        key = checked_key(key)
        try:
            obstore.head(self._store, key)
        except (NotFoundError, FileNotFoundError):
            return False
        except Exception as error:
            raise _object_store_error(self.location, error) from None
        return True

    def contains(self, key: str) -> bool:
        try:
            checked_key(key)
        except UnsafeKeyError:
            return False
        return True

    def where(self, key: str) -> str:
        return f"{self.location}/{key}"


def _path_of(meta: Any) -> str:
    return str(meta["path"])


def _polars_storage_options() -> dict[str, str]:
    """Options for Polars' own S3 reader: it reads the ``AWS_*`` credentials itself; it only needs telling that a
    plain-http endpoint is allowed (the same choice as the writer's)."""
    return {"aws_allow_http": "true"}
