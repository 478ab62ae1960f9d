"""Benchmark: response export → Parquet, ours vs a naive pandas baseline.

Generates once (cached under bench/.cache/, not timed) a Qualtrics-shaped response export of
N responses × 50 columns, as a CSV ZIP (3 header rows) and as an NDJSON ZIP (values, labels,
displayedFields, displayedValues per response). Then every run of every path happens in a fresh
subprocess, the paths interleaved so that load from other processes hits them alike:

* ours, CSV → Parquet:    ``ExportFile(zip, format="csv").write(out.parquet)``
* ours, NDJSON → Parquet: ``ExportFile(zip, format="ndjson").write(out.parquet)``
* baseline:               ``zipfile`` + ``pandas.read_csv(skiprows=[1, 2])``, nothing more
* baseline + Parquet:     the same, then ``DataFrame.to_parquet`` (the same job as ours)
* floor: each stage of ours alone, on the clock by itself: inflating the CSV member, parsing its
  data rows as strings, writing the typed rows to Parquet. Their CPU seconds summed and spread
  over every core (but no less than the write, which pyarrow runs on one thread) give the best
  wall time any CSV → Parquet path built on these libraries can reach here, so the table says
  whether the 3x target is within reach on this machine.

The table shows rows/s (conversion time measured in the child, imports and interpreter start
excluded) as best and median of the runs, the child's CPU time, its peak RSS (``ru_maxrss``
from ``os.wait4``, worst run) and the speed-up over the naive ``read_csv`` baseline (best vs
best, median vs median). Targets: >= 300,000 rows/s, <= 400 MB, >= 3x the baseline.

    .venv/bin/python bench/export.py                   # 1,000,000 responses, 3 runs per path
    .venv/bin/python bench/export.py --rows 100000 --repeat 5 --paths csv,pandas
    .venv/bin/python bench/export.py --paths csv,floor --repeat 1    # ours and the floor only
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

CACHE = Path(__file__).resolve().parent / ".cache"
CHUNK = 100_000
TARGET_ROWS_PER_S = 300_000
TARGET_RSS_MB = 400
TARGET_SPEEDUP = 3.0

TEXTS = [
    "Great service, thanks!",
    'The agent said "we will call back" but never did.',
    "Too slow.\nWaited 40 minutes on the phone, then gave up.",
    "Prix correct, équipe sympathique ✓",
    "n/a",
    "Checkout kept failing, tried 3 cards; support was kind though.",
]
SEGMENTS = ["gold", "silver", "bronze", "trial"]
SOURCES = ["email", "sms", "web", "qr"]
LABELS5 = ["Very dissatisfied", "Dissatisfied", "Neutral", "Satisfied", "Very satisfied"]


def _columns() -> list[tuple[str, str, dict[str, str], str]]:
    """(export tag, question text, ImportId JSON fields, generator kind) × 50."""
    tz = {"timeZone": "America/Denver"}
    cols: list[tuple[str, str, dict[str, str], str]] = [
        ("StartDate", "Start Date", {"ImportId": "startDate", **tz}, "start"),
        ("EndDate", "End Date", {"ImportId": "endDate", **tz}, "end"),
        ("Status", "Response Type", {"ImportId": "status"}, "status"),
        ("IPAddress", "IP Address", {"ImportId": "ipAddress"}, "ip"),
        ("Progress", "Progress", {"ImportId": "progress"}, "progress"),
        ("Duration (in seconds)", "Duration (in seconds)", {"ImportId": "duration"}, "duration"),
        ("Finished", "Finished", {"ImportId": "finished"}, "finished"),
        ("RecordedDate", "Recorded Date", {"ImportId": "recordedDate", **tz}, "end"),
        ("ResponseId", "Response ID", {"ImportId": "_recordId"}, "rid"),
        ("LocationLatitude", "Location Latitude", {"ImportId": "locationLatitude"}, "lat"),
        ("LocationLongitude", "Location Longitude", {"ImportId": "locationLongitude"}, "lon"),
        (
            "DistributionChannel",
            "Distribution Channel",
            {"ImportId": "distributionChannel"},
            "channel",
        ),
        ("UserLanguage", "User Language", {"ImportId": "userLanguage"}, "lang"),
        (
            "Q1",
            "How likely are you to recommend us to a friend or colleague?",
            {"ImportId": "QID1"},
            "nps",
        ),
        (
            "Q1_NPS_GROUP",
            "How likely are you to recommend us? - Group",
            {"ImportId": "QID1_NPS_GROUP"},
            "npsgroup",
        ),
    ]
    for row in range(1, 9):
        cols.append(
            (
                f"Q2_{row}",
                f'Please rate:\n- aspect {row}, "quality"',
                {"ImportId": f"QID2_{row}"},
                "mc5",
            )
        )
    for q in range(3, 13):
        cols.append(
            (f"Q{q}", f"Question {q}: how satisfied were you?", {"ImportId": f"QID{q}"}, "mc5")
        )
    for q in range(20, 23):
        cols.append((f"Q{q}", f"Question {q}", {"ImportId": f"QID{q}"}, "mc5"))
    for s in range(1, 4):
        cols.append((f"Q13_{s}", f"Slider {s}", {"ImportId": f"QID13_{s}"}, "slider"))
    for c in range(1, 3):
        cols.append((f"Q14_{c}", f"Which apply? - option {c}", {"ImportId": f"QID14_{c}"}, "multi"))
    for q in range(15, 20):
        cols.append((f"Q{q}", f"Tell us more (question {q})", {"ImportId": f"QID{q}_TEXT"}, "text"))
    cols += [
        ("segment", "segment", {"ImportId": "segment"}, "segment"),
        ("source", "source", {"ImportId": "source"}, "source"),
        ("customer_id", "customer_id", {"ImportId": "customer_id"}, "customer"),
        ("Q_RecaptchaScore", "Q_RecaptchaScore", {"ImportId": "Q_RecaptchaScore"}, "score"),
    ]
    assert len(cols) == 50, len(cols)
    return cols


def _chunk(rng: np.random.Generator, start: int, count: int) -> dict[str, pa.Array]:
    """One chunk of typed-as-text cells per generator kind (None = empty cell)."""
    cols = _columns()
    index = np.arange(start, start + count)
    base = np.datetime64("2024-01-01T00:00:00")
    started = base + rng.integers(0, 300 * 86400, count).astype("timedelta64[s]")
    duration = rng.integers(30, 1800, count)
    ended = started + duration.astype("timedelta64[s]")
    finished = rng.random(count) < 0.9

    def text_of(values: np.ndarray, empty: np.ndarray | None = None) -> pa.Array:
        strings = pa.array(values.astype(str))
        if empty is None:
            return strings
        return pc.if_else(pa.array(empty), pa.nulls(count, pa.string()), strings)

    def pick(pool: list[str], empty_share: float) -> pa.Array:
        choice = pa.array(rng.integers(0, len(pool), count))
        picked = pc.take(pa.array(pool), choice)
        empty = pa.array(rng.random(count) < empty_share)
        return pc.if_else(empty, pa.nulls(count, pa.string()), picked)

    nps = rng.integers(0, 11, count)
    nps_empty = rng.random(count) < 0.05
    stamp = "%Y-%m-%d %H:%M:%S"
    out: dict[str, pa.Array] = {}
    for tag, _, _, kind in cols:
        if kind == "start":
            out[tag] = pc.strftime(pa.array(started), format=stamp)
        elif kind == "end":
            out[tag] = pc.strftime(pa.array(ended), format=stamp)
        elif kind == "status":
            out[tag] = text_of(np.where(rng.random(count) < 0.98, 0, 1))
        elif kind == "ip":
            out[tag] = pa.array([f"10.{i % 251}.{i % 241}.{i % 239}" for i in index.tolist()])
        elif kind == "progress":
            out[tag] = text_of(np.where(finished, 100, rng.integers(5, 99, count)))
        elif kind == "duration":
            out[tag] = text_of(duration)
        elif kind == "finished":
            out[tag] = text_of(finished.astype(int))
        elif kind == "rid":
            out[tag] = pa.array([f"R_{i:015X}" for i in index.tolist()])
        elif kind == "lat":
            out[tag] = text_of(np.round(rng.uniform(-60, 70, count), 6))
        elif kind == "lon":
            out[tag] = text_of(np.round(rng.uniform(-170, 170, count), 6))
        elif kind == "channel":
            out[tag] = pick(["anonymous", "email", "sms"], 0.0)
        elif kind == "lang":
            out[tag] = pick(["EN", "DE", "FR", "ES"], 0.0)
        elif kind == "nps":
            out[tag] = text_of(nps, nps_empty)
        elif kind == "npsgroup":
            out[tag] = text_of(np.select([nps <= 6, nps <= 8], [1, 2], 3), nps_empty)
        elif kind == "mc5":
            out[tag] = text_of(rng.integers(1, 6, count), rng.random(count) < 0.1)
        elif kind == "slider":
            out[tag] = text_of(np.round(rng.uniform(0, 100, count), 1), rng.random(count) < 0.1)
        elif kind == "multi":
            out[tag] = text_of(np.ones(count, dtype=int), rng.random(count) < 0.6)
        elif kind == "text":
            out[tag] = pick(TEXTS, 0.7)
        elif kind == "segment":
            out[tag] = pick(SEGMENTS, 0.05)
        elif kind == "source":
            out[tag] = pick(SOURCES, 0.05)
        elif kind == "customer":
            out[tag] = pa.array([f"C-{i * 7919 % 10_000_000:07d}" for i in index.tolist()])
        elif kind == "score":
            out[tag] = text_of(np.round(rng.uniform(0, 1, count), 1))
    return out


def _csv_cells(values: pa.Array) -> pa.Array:
    """CSV fields as Qualtrics writes them (see the recorded export in tests/fixtures): quoted
    only when they hold a quote, comma or line break; empty for a missing value."""
    text = values.cast(pa.string())
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    needs_quotes = pc.match_substring_regex(text, r'[",\r\n]')
    return pc.fill_null(pc.if_else(needs_quotes, quoted, text), "")


def _csv_lines(columns: list[pa.Array]) -> bytes:
    lines = pc.binary_join_element_wise(*(_csv_cells(c) for c in columns), ",")
    return ("\n".join(lines.to_pylist()) + "\n").encode()


def _generate_csv(path: Path, rows: int) -> None:
    cols = _columns()
    rng = np.random.default_rng(7)
    part = path.with_suffix(".part")
    with (
        zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive,
        archive.open("Customer Satisfaction.csv", "w", force_zip64=True) as sink,
    ):
        header = [pa.array([c[0], c[1], json.dumps(c[2], separators=(",", ":"))]) for c in cols]
        sink.write(_csv_lines(header))
        for start in range(0, rows, CHUNK):
            chunk = _chunk(rng, start, min(CHUNK, rows - start))
            sink.write(_csv_lines([chunk[tag] for tag, _, _, _ in cols]))
    part.replace(path)


def _json_text(values: pa.Array) -> pa.Array:
    """JSON string literals for a text array (nulls stay null)."""
    return pa.array(
        [None if v is None else json.dumps(v, ensure_ascii=False) for v in values.to_pylist()],
        pa.string(),
    )


def _generate_ndjson(path: Path, rows: int) -> None:
    cols = _columns()
    rng = np.random.default_rng(7)
    numeric = {
        "status",
        "progress",
        "duration",
        "finished",
        "nps",
        "npsgroup",
        "mc5",
        "slider",
        "multi",
        "score",
    }
    iso = "%Y-%m-%dT%H:%M:%SZ"
    questions = sorted(
        {c[2]["ImportId"].split("_")[0] for c in cols if c[2]["ImportId"].startswith("QID")},
        key=lambda q: int(q[3:]),
    )
    displayed = (
        '"displayedFields":'
        + json.dumps(questions, separators=(",", ":"))
        + ',"displayedValues":'
        + json.dumps({q: [1, 2, 3, 4, 5] for q in questions}, separators=(",", ":"))
    )
    part = path.with_suffix(".part")
    with (
        zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive,
        archive.open("Customer Satisfaction.json", "w", force_zip64=True) as sink,
    ):
        for start in range(0, rows, CHUNK):
            count = min(CHUNK, rows - start)
            chunk = _chunk(rng, start, count)
            value_parts = []
            label_parts = []
            for tag, _, ids, kind in cols:
                key = ids["ImportId"]
                cells = chunk[tag]
                if kind in ("start", "end"):
                    parsed = pc.strptime(cells, format="%Y-%m-%d %H:%M:%S", unit="s")
                    literal = pc.binary_join_element_wise(
                        '"', pc.strftime(parsed, format=iso), '"', ""
                    )
                elif kind in numeric:
                    literal = cells
                elif kind in ("text", "ip", "rid", "customer"):
                    literal = (
                        _json_text(cells)
                        if kind == "text"
                        else (pc.binary_join_element_wise('"', cells, '"', ""))
                    )
                else:
                    literal = pc.binary_join_element_wise('"', cells, '"', "")
                value_parts.append(pc.binary_join_element_wise(f'"{key}":', literal, ""))
                if kind == "mc5":
                    label = pc.take(pa.array(LABELS5), pc.subtract(cells.cast(pa.int64()), 1))
                    label_parts.append(pc.binary_join_element_wise(f'"{key}":"', label, '"', ""))
            values = pc.binary_join_element_wise(*value_parts, ",", null_handling="skip")
            labels = pc.binary_join_element_wise(*label_parts, ",", null_handling="skip")
            lines = pc.binary_join_element_wise(
                '{"responseId":"',
                chunk["ResponseId"],
                '","values":{',
                values,
                '},"labels":{',
                labels,
                "}," + displayed + "}\n",
                "",
            )
            for line_chunk in lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]:
                offsets = pa.Array.from_buffers(
                    pa.int32(),
                    len(line_chunk) + 1,
                    [None, line_chunk.buffers()[1]],
                    offset=line_chunk.offset,
                )
                first, last = offsets[0].as_py(), offsets[-1].as_py()
                sink.write(memoryview(line_chunk.buffers()[2])[first:last])
    part.replace(path)


def ensure_inputs(rows: int, console: Console) -> tuple[Path, Path]:
    CACHE.mkdir(parents=True, exist_ok=True)
    # v2: fields quoted only where needed, as Qualtrics writes them.
    csv_zip = CACHE / f"export_{rows}.v2.csv.zip"
    ndjson_zip = CACHE / f"export_{rows}.ndjson.zip"
    for path, make in ((csv_zip, _generate_csv), (ndjson_zip, _generate_ndjson)):
        if not path.exists():
            console.print(f"generating {path.name} (once; cached) …")
            began = time.perf_counter()
            make(path, rows)
            console.print(
                f"  done in {time.perf_counter() - began:.1f}s, "
                f"{path.stat().st_size / 1e6:.0f} MB zipped"
            )
    return csv_zip, ndjson_zip


# --- children -------------------------------------------------------------------------------


def child(path_name: str, source: str, dest: str) -> None:
    """Run one path in this (fresh) process; print {"rows", "seconds", "cpu"} as JSON.

    Imports happen before the clock starts: the table compares conversion, not start-up.
    """
    if path_name in FLOOR_STAGES:
        rows, seconds, cpu_seconds = _floor_stage(path_name, source, dest)
        print(json.dumps({"rows": rows, "seconds": seconds, "cpu": cpu_seconds}))
        return
    if path_name in ("pandas-csv", "pandas-csv-parquet"):
        import pandas as pd

        began = time.perf_counter()
        cpu = time.process_time()
        # The naive way: the ZIP member as a stream, the two extra header rows skipped.
        with zipfile.ZipFile(source) as archive, archive.open(archive.namelist()[0]) as handle:
            frame = pd.read_csv(handle, skiprows=[1, 2])
        if path_name == "pandas-csv-parquet":
            frame.to_parquet(dest)
        rows = len(frame)
    else:
        from qualflow.qualtrics.export_file import ExportFile

        began = time.perf_counter()
        cpu = time.process_time()
        if path_name == "ours-csv":
            rows = ExportFile(source, format="csv", compressed=True).write(dest)
        else:
            rows = ExportFile(source, format="ndjson", compressed=True).write(dest)
    seconds = time.perf_counter() - began
    print(json.dumps({"rows": rows, "seconds": seconds, "cpu": time.process_time() - cpu}))


# --- the floor: each stage of the CSV path alone -------------------------------------------
#
# What any CSV → Parquet conversion of this export must spend, whatever its design: inflate the
# member, tokenize its records, encode the typed rows as Parquet. Each stage runs in its own
# child with everything else done untimed around it, with the same inflater, CSV reader settings
# and Parquet writer settings as our path; only the stage's own calls are on the clock.

FLOOR_STAGES = {
    "floor-inflate": "inflate the CSV member (ISA-L + CRC-32, our reader's inflater)",
    "floor-parse": "parse the data rows, every column as strings (pyarrow.csv, batches dropped)",
    "floor-write": "write the typed rows to Parquet (our writer's settings, snappy)",
    # Not part of the floor (conversion is work a string-only reader skips): shows how much of
    # our path's CPU goes into converting cells while parsing.
    "floor-parse-typed": "for reference: parse into our column types (not in the floor)",
}
_FLOOR_SUM = ("floor-inflate", "floor-parse", "floor-write")


def _floor_stage(stage: str, source: str, dest: str) -> tuple[int, float, float]:
    """Run one floor stage on ``source``; (rows, wall seconds, CPU seconds) of the stage alone."""
    from qualflow.qualtrics import _export_csv as csv_reader
    from qualflow.qualtrics import export_file
    from qualflow.qualtrics._export_io import list_members, open_utf8, record_chunks

    member = list_members(source, compressed=True)[0]
    export = export_file.ExportFile(source, format="csv", compressed=True)
    wall = cpu = 0.0
    rows = 0
    if stage == "floor-inflate":
        began, started = time.perf_counter(), time.process_time()
        with open_utf8(member) as stream:
            while stream.read(export_file._CHUNK_SIZE):
                pass
        return 0, time.perf_counter() - began, time.process_time() - started
    if stage in ("floor-parse", "floor-parse-typed"):
        # One thread, no helpers: the process's CPU clock around each parse call is the parse's.
        header, plans = export._csv_layout()
        read = csv_reader.CsvRead(header, [p for p in plans if not p.column.is_label], ",")
        names = [p.column.name for p in read.plans]
        typed = stage == "floor-parse-typed"
        with open_utf8(member) as stream:
            csv_reader.read_header(stream, member, ",")
            for chunk in record_chunks(stream, export_file._CHUNK_SIZE):
                began, started = time.perf_counter(), time.process_time()
                table = read.parse(chunk, as_strings=not typed)
                rows += 0 if table is None else table.num_rows
                if table is not None and typed:
                    for batch in table.to_batches():
                        csv_reader._finish_fast(batch, read.plans, names)
                del table  # freeing the rows is part of any path's work
                wall += time.perf_counter() - began
                cpu += time.process_time() - started
        return rows, wall, cpu
    # floor-write: our path's typed batches, parked untimed in a temporary Arrow file (a batch at
    # a time, so memory stays flat), read back and grouped into the tables our writer gets (one
    # row group per ~64k rows), then written with no other thread running.
    from qualflow.qualtrics._export_spill import Spill

    schema = export.schema()
    spill = Spill()
    try:
        for batch in export.iter_batches():
            spill.append(0, pa.Table.from_batches([batch], schema=schema))
        spill.finish()
        writer = export_file._parquet_writer(
            dest, schema, "snappy", export._dictionary_columns(False)
        )
        group: list[pa.RecordBatch] = []
        group_rows = 0
        for batch in itertools.chain(spill.batches(0), [None]):
            if batch is not None:
                group.append(batch)
                group_rows += batch.num_rows
                if group_rows < export_file._ROW_GROUP_ROWS:
                    continue
            table = pa.Table.from_batches(group, schema=schema)
            began, started = time.perf_counter(), time.process_time()
            if batch is None:
                if group:
                    writer.write_table(table)
                writer.close()  # the footer
            else:
                writer.write_table(table)
            del table  # freeing the rows is part of any path's work
            group.clear()
            wall += time.perf_counter() - began
            cpu += time.process_time() - started
            rows += group_rows
            group_rows = 0
    finally:
        spill.close()
    return rows, wall, cpu


# Linux carries the forking process's RSS high-water mark into a child's ru_maxrss (across
# fork and exec). This launcher is a fresh, small interpreter: the measured child it starts
# inherits ~10 MB, not this benchmark's generated arrays.
_LAUNCHER = (
    "import json, os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, text=True)\n"
    "out = p.stdout.read()\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "print(json.dumps({'exit': os.waitstatus_to_exitcode(status), 'maxrss_kb': usage.ru_maxrss,"
    " 'stdout': out}))\n"
)


def measure(path_name: str, source: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="qf-bench-") as folder:
        dest = os.path.join(folder, "out.parquet")
        command = [sys.executable, __file__, "--child", path_name, str(source), dest]
        launched = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, *command],
            capture_output=True,
            text=True,
            check=True,
        )
        report = json.loads(launched.stdout)
        if report["exit"] != 0:
            raise SystemExit(f"{path_name} failed with exit code {report['exit']}")
        result = json.loads(report["stdout"].strip().splitlines()[-1])
        size = os.path.getsize(dest) if os.path.exists(dest) else 0
    return {
        "rows": result["rows"],
        "seconds": result["seconds"],
        "cpu": result["cpu"],
        "rss_mb": report["maxrss_kb"] / 1024,
        "parquet_mb": size / 1e6,
    }


PATHS = {
    "csv": ("ours: CSV ZIP → Parquet (typed)", "ours-csv"),
    "ndjson": ("ours: NDJSON ZIP → Parquet (typed)", "ours-ndjson"),
    "pandas": ("baseline: zipfile + pandas.read_csv", "pandas-csv"),
    "pandas-parquet": ("baseline + DataFrame.to_parquet", "pandas-csv-parquet"),
    "floor": ("floor: each stage of CSV → Parquet alone", "floor"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="responses (default 1e6)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per path (default 3)")
    parser.add_argument(
        "--paths",
        default=",".join(PATHS),
        help=f"comma-separated subset of {','.join(PATHS)} (the baseline always runs)",
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("PATH", "SOURCE", "DEST"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    chosen = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = sorted(set(chosen) - set(PATHS))
    if unknown:
        parser.error(f"unknown paths: {', '.join(unknown)}")
    if "pandas" not in chosen:
        chosen.append("pandas")
    console = Console(width=170)
    csv_zip, ndjson_zip = ensure_inputs(args.rows, console)
    runs: list[tuple[str, str, Path]] = []
    for key in (k for k in PATHS if k in chosen):
        if key == "floor":
            runs += [(label, stage, csv_zip) for stage, label in FLOOR_STAGES.items()]
        else:
            runs.append((*PATHS[key], ndjson_zip if key == "ndjson" else csv_zip))
    load_before = os.getloadavg()[0]
    results: dict[str, list[dict[str, float]]] = {name: [] for _, name, _ in runs}
    for attempt in range(max(1, args.repeat)):
        for label, name, source in runs:
            console.print(f"run {attempt + 1}/{args.repeat}: {label} …")
            results[name].append(measure(name, source))

    def rate(result: dict[str, float]) -> float:
        return result["rows"] / result["seconds"]

    baseline_best = max(rate(r) for r in results["pandas-csv"])
    baseline_median = statistics.median(rate(r) for r in results["pandas-csv"])
    table = Table(
        title=f"Response export → Parquet, {args.rows:,} responses × 50 columns "
        f"(CSV ZIP {csv_zip.stat().st_size / 1e6:.0f} MB, "
        f"NDJSON ZIP {ndjson_zip.stat().st_size / 1e6:.0f} MB), {args.repeat} runs per path"
    )
    for header in (
        "path",
        "rows/s best",
        "rows/s median",
        "seconds best",
        "CPU s median",
        "rows per CPU s",
        "peak RSS MB",
        "vs baseline best / median",
        "targets (≥300k rows/s, ≤400 MB, ≥3×) on best",
    ):
        table.add_column(header, justify="right" if header != "path" else "left")
    for label, name, _ in runs:
        if name in FLOOR_STAGES:
            continue
        done = results[name]
        best = max(rate(r) for r in done)
        median = statistics.median(rate(r) for r in done)
        rss = max(r["rss_mb"] for r in done)
        if name.startswith("pandas"):
            verdict = "—"
        else:
            checks = [
                best >= TARGET_ROWS_PER_S,
                rss <= TARGET_RSS_MB,
                best / baseline_best >= TARGET_SPEEDUP,
            ]
            verdict = " ".join("✓" if ok else "✗" for ok in checks)
        table.add_row(
            label,
            f"{best:,.0f}",
            f"{median:,.0f}",
            f"{min(r['seconds'] for r in done):.2f}",
            f"{statistics.median(r['cpu'] for r in done):.1f}",
            f"{max(r['rows'] / r['cpu'] for r in done):,.0f}",
            f"{rss:.0f}",
            f"{best / baseline_best:.2f}× / {median / baseline_median:.2f}×",
            verdict,
        )
    console.print(table)
    if "floor" in chosen:
        _print_floor(console, results, baseline_best)
    console.print(
        f"{os.cpu_count()} CPUs; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after. Wall-clock figures shrink when other processes share "
        "the machine; CPU s is the path's own CPU time (all threads), and rows per CPU s "
        "(best run) the load-independent measure of its work: 300,000 rows/s on 2 cores needs "
        "at least 150,000."
    )


def _print_floor(
    console: Console, results: dict[str, list[dict[str, float]]], baseline_best: float
) -> None:
    """The stages' CPU, and what their sum allows on this machine's cores."""
    table = Table(title="Floor: each stage of CSV → Parquet alone (fresh child each, CPU s)")
    for header in ("stage", "CPU s best", "CPU s median", "peak RSS MB"):
        table.add_column(header, justify="right" if header != "stage" else "left")
    best: dict[str, float] = {}
    for stage, label in FLOOR_STAGES.items():
        done = results[stage]
        best[stage] = min(r["cpu"] for r in done)
        table.add_row(
            label,
            f"{best[stage]:.2f}",
            f"{statistics.median(r['cpu'] for r in done):.2f}",
            f"{max(r['rss_mb'] for r in done):.0f}",
        )
    floor_cpu = sum(best[stage] for stage in _FLOOR_SUM)
    table.add_row("inflate + parse + write", f"{floor_cpu:.2f}", "", "", style="bold")
    console.print(table)
    cores = os.cpu_count() or 1
    rows = max(r["rows"] for r in results["floor-parse"])
    # pyarrow writes a Parquet file on one thread (the write stage's CPU is its wall time), so
    # no number of cores brings the wall time under that stage.
    serial = best["floor-write"]
    wall = max(floor_cpu / cores, serial)
    # The baseline runs on one thread: unloaded, its wall rate is its rate per CPU second. The
    # verdict holds against the better of the two, so load slowing the baseline cannot pass it.
    baseline_cpu = max(r["rows"] / r["cpu"] for r in results["pandas-csv"])
    baseline = max(baseline_best, baseline_cpu)
    line = (
        f"Floor on {cores} cores: max({floor_cpu:.2f} CPU s / {cores}, write {serial:.2f} s) "
        f"= {wall:.2f} s at best, "
        f"{rows / wall:,.0f} rows/s = {rows / wall / baseline_best:.2f}× the baseline's best "
        f"({baseline_best:,.0f} rows/s), {rows / wall / baseline_cpu:.2f}× its rows per CPU s "
        f"({baseline_cpu:,.0f})"
    )
    if results.get("ours-csv"):
        ours_cpu = min(r["cpu"] for r in results["ours-csv"])
        line += f"; ours spends {ours_cpu:.2f} CPU s ({ours_cpu / floor_cpu:.2f}× the floor)"
    verdict = "reachable" if rows / wall >= TARGET_SPEEDUP * baseline else "NOT reachable"
    console.print(f"{line}. The {TARGET_SPEEDUP:g}× target is {verdict} on this machine.")
    typed_cpu = floor_cpu - best["floor-parse"] + best["floor-parse-typed"]
    typed_wall = max(typed_cpu / cores, serial)
    console.print(
        f"With the cells converted to our types while parsing (the reference row instead of the "
        f"string parse): {typed_cpu:.2f} CPU s, {typed_wall:.2f} s at best, "
        f"{rows / typed_wall:,.0f} rows/s = {rows / typed_wall / baseline:.2f}× the baseline's "
        "better rate. On any number of cores, the one-thread Parquet write caps a path at "
        f"{rows / serial:,.0f} rows/s = {rows / serial / baseline:.2f}× the baseline's better rate."
    )


if __name__ == "__main__":
    main()
