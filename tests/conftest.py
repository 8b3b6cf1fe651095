"""Shared fixtures: a private PostgreSQL cluster (started only when a test asks for it) and the
skip of GPU-marked tests on machines without a CUDA device."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pg
import pytest

_db_names = itertools.count()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """SQLAlchemy URL of a database on a PostgreSQL 15 cluster private to this test session."""
    reason = pg.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with pg.postgres_cluster() as url:
        yield url


@pytest.fixture
def pg_db_url(pg_url: str) -> Iterator[str]:
    """A fresh, empty database on the session cluster for one test; dropped afterwards."""
    url = pg.create_database(pg_url, f"t{next(_db_names)}")
    yield url
    pg.drop_database(url)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:  # anything that needs the cluster is a postgres test, marked or not
        if {"pg_url", "pg_db_url"} & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.postgres)
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    try:
        import torch

        has_cuda = bool(torch.cuda.is_available())
    except ImportError:
        has_cuda = False
    if not has_cuda:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason="no CUDA device"))
