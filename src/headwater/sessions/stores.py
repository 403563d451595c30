"""Stores for the session zones under the project's storage root (a local folder or a bucket prefix)."""

from __future__ import annotations

from headwater.config import Settings
from headwater.storage import Location, Scheme, Store, StoreOptions, open_store, parse_location


def store_options(settings: Settings) -> StoreOptions:
    """How to reach the storage root, from ``storage:`` in headwater.yaml (credentials from the environment)."""
    cfg = settings.storage
    return StoreOptions(
        endpoint_url=cfg.endpoint_url,
        region=cfg.region,
        path_style=cfg.path_style,
        allow_insecure_http=cfg.allow_insecure_http,
        ca_bundle=cfg.ca_bundle,
    )


def prefix_location(settings: Settings, prefix: str) -> Location:
    """The location of ``prefix`` (e.g. ``raw/sessions/2021/03/01/20210301_161221``) under the storage root."""
    base = parse_location(settings.storage_root)
    if base.scheme is Scheme.FILE:
        assert base.path is not None
        return Location(Scheme.FILE, path=base.path / prefix)
    return Location(base.scheme, bucket=base.bucket, prefix=base.child(prefix))


def prefix_store(settings: Settings, prefix: str) -> Store:
    """A store rooted at ``prefix`` under the storage root."""
    return open_store(prefix_location(settings, prefix), store_options(settings))
