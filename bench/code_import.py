"""Benchmark: importing a CSV of gift codes into a pool (`IncentiveManager.import_codes`).

A file of N fresh codes (code, value, currency, expiry) is imported into an empty pool, then the
same file again (every line a duplicate), on SQLite and on PostgreSQL, each in a fresh
database. The table shows codes per second and the importing process's CPU per code; each
code is encrypted at rest and hashed for the pool's unique index, so this is the path a manager
waits on when uploading a large file (the API and the page accept up to 20 MB, ~600k codes).

    .venv/bin/python bench/code_import.py
    .venv/bin/python bench/code_import.py --codes 200000 --skip-postgres
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rewards import database  # the benchmarks' throwaway databases


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(kind: str, url: str, codes: int) -> list[tuple[str, int, float, float]]:
    from qualflow.incentives.manage import IncentiveManager
    from qualflow.store.db import make_engine, make_sessionmaker
    from qualflow.store.migrate import migrate
    from qualflow.store.secrets import SecretBox, attach_secret_box

    migrate(url)
    engine = make_engine(url)
    attach_secret_box(engine, SecretBox([SecretBox.generate_key()]))
    manager = IncentiveManager(make_sessionmaker(engine))
    text = "code,value,currency,expiry\n" + "".join(
        f"BENCH-{n:08d}-{n * 7919 % 100000:05d},10.00,USD,2099-12-31\n" for n in range(codes)
    )
    pool = manager.create_pool(f"bench {kind}")
    rows = []
    try:
        for label in ("new codes", "same file again (duplicates)"):
            started, cpu = time.perf_counter(), _cpu()
            report = manager.import_codes(pool.id, text)
            seconds, cpu = time.perf_counter() - started, _cpu() - cpu
            counted = report.imported if label == "new codes" else report.duplicates
            assert counted == codes, (label, report)
            rows.append((f"{kind}: {label}", codes, seconds, cpu))
    finally:
        engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codes", type=int, default=50_000)
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    kinds = [k for k in ("sqlite", "postgres") if not getattr(args, f"skip_{k}")]
    table = Table(title=f"Gift-code import, {args.codes:,} codes per file")
    for column in ("scenario", "codes", "seconds", "codes/s", "CPU µs/code"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    with tempfile.TemporaryDirectory() as workdir:
        for kind in kinds:
            with database(kind, Path(workdir)) as url:
                for scenario, codes, seconds, cpu in measure(kind, url, args.codes):
                    table.add_row(
                        scenario, f"{codes:,}", f"{seconds:.2f}", f"{codes / seconds:,.0f}",
                        f"{cpu * 1e6 / codes:.0f}",
                    )  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
