"""``horde-analytics hydrate``: the cache hydrator loop until SIGTERM/SIGINT (exit 0)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from jobs._cli import (
    EXIT_OK,
    EXIT_USAGE,
    ArgumentParser,
    add_source_arguments,
    parsed_or_exit,
    settings_or_exit,
)
from jobs.run import execute, make_publisher
from pipeline.contracts.masking import masked_text
from pipeline.contracts.settings import Settings, secret_urls
from pipeline.shell.hydrator import CacheHydrator
from pipeline.shell.logs import configure_logging
from pipeline.sinks.invalidation import InvalidationBus
from pipeline.sinks.redis_client import RedisConfigError, redis_client

log = logging.getLogger("jobs.hydrate")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="horde-analytics hydrate", description="Run batches on a schedule.")
    add_source_arguments(parser)
    return parser


def cycle(settings: Settings) -> None:
    """One hydration cycle: a guarded run; a failure raises so the hydrator logs and retries."""
    result = execute(settings)
    if isinstance(result, int):
        raise RuntimeError(f"cycle ended with exit code {result}")
    if result.not_published is not None:  # committed (history has it), Redis not updated: retried next cycle
        raise RuntimeError(f"run {result.run_id} committed but not published: {result.not_published}")


def main(argv: Sequence[str]) -> int:
    args = parsed_or_exit(build_parser(), argv)
    if isinstance(args, int):
        return args
    settings = settings_or_exit(
        model_reference_source=args.reference,
        horde_source=args.horde,
        snapshot_dir=args.snapshot_dir,
        cache_hydration_enabled=True,  # hydrating: keys live for the stale TTL (SPEC §7.1)
    )
    if isinstance(settings, int):
        return settings
    configure_logging(secret_urls=secret_urls(settings))
    try:
        make_publisher(settings)  # a configuration Redis refuses fails now (exit 2); one that is away, later
    except RedisConfigError as error:
        print(f"horde-analytics: {masked_text(str(error), *secret_urls(settings))}", file=sys.stderr)
        return EXIT_USAGE
    hydrator = CacheHydrator(settings, lambda: cycle(settings))
    bus: InvalidationBus | None = None
    if settings.redis_url:
        # Even while Redis is down: the listener keeps trying and subscribes once it is back.
        bus = InvalidationBus(
            redis_client(settings.redis_url, settings.redis_socket_timeout), settings.redis_key_prefix
        )
        bus.subscribe(lambda category: hydrator.wake())  # a changed category is recomputed at once
    asyncio.run(hydrator.serve())
    if bus is not None:
        bus.close()
    log.info("hydrator stopped", extra={"cycles": hydrator.cycles, "failures": hydrator.failures})
    return EXIT_OK
