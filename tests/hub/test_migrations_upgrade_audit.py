"""The upgrade path as an operator meets it: concurrent starts, a database ahead of the code, a
database that is not qualflow's, and upgrades and downgrades with data in the database."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

from qualflow.store.migrate import current_revision, head_revision, migrate
from tests.conftest import temporary_postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    with temporary_postgres_database("audit") as url:
        yield url


def _migrate_after(barrier: multiprocessing.synchronize.Barrier, url: str) -> None:
    barrier.wait()
    migrate(url)


def test_processes_starting_together_take_turns_to_migrate(empty_url: str) -> None:
    """Web and worker starting at once with auto_migrate: the later one waits, then finds the
    schema at head, instead of failing on 'table users already exists'."""
    context = multiprocessing.get_context("spawn")
    processes = 4
    barrier = context.Barrier(processes)
    workers = [
        context.Process(target=_migrate_after, args=(barrier, empty_url)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [worker.exitcode for worker in workers] == [0] * processes
    assert current_revision(empty_url) == head_revision()
