"""``run --republish``: the latest committed run's stored Redis values published again, nothing computed (SPEC §12)."""

from __future__ import annotations

import logging

from pipeline.contracts.settings import Settings
from pipeline.shell.batch import Publisher
from pipeline.sinks.parquet_snapshot import read_artifact
from pipeline.sinks.redis_publisher import PublishError
from pipeline.sinks.run_index import latest_manifest
from pipeline.sinks.store import open_store

__all__ = ["NothingToRepublishError", "republish"]

log = logging.getLogger(__name__)


class NothingToRepublishError(RuntimeError):
    """The store has no committed run, or its latest run holds no Redis values."""


def republish(settings: Settings, publisher: Publisher) -> tuple[str, list[str]]:
    """Publish the latest committed run's stored Redis values again, computing nothing (SPEC §12).

    Returns the run id and the keys published. Raises LockHeldError / LockLostError, PublishError (also when
    Redis cannot give the lock), NothingToRepublishError.
    """
    root = open_store(settings.snapshot_dir)
    with publisher.run_lock() as fence:
        if fence is None:
            raise PublishError("redis is unusable: nothing republished")
        # through the run index, checked against one listing of the manifests (SPEC §13); read under the lock: no
        # run can commit a newer one meanwhile
        latest = latest_manifest(root)
        if latest is None:
            raise NothingToRepublishError(f"no committed run in {root.location} to republish")
        try:
            document = read_artifact(root, latest, "redis")
        except (OSError, ValueError) as error:  # missing, unreadable, corrupt, or a path outside the store
            raise NothingToRepublishError(f"run {latest['run_id']}: its Redis values cannot be read: {error}") from None
        if document is None:
            raise NothingToRepublishError(
                f"run {latest['run_id']} stored no Redis values (it ran without REDIS_URL); `run` computes a new one"
            )
        published = publisher.publish(publisher.restored(document), fence)
    log.info("run republished", extra={"run_id": latest["run_id"], "keys": len(published)})
    return latest["run_id"], published
