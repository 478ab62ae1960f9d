"""Benchmark: response export → Parquet, ours vs a naive pandas baseline.

Generates once (cached under bench/.cache/, not timed) a Qualtrics-shaped response export of
N responses × 50 columns, as a CSV ZIP (3 header rows) and as an NDJSON ZIP (values, labels,
displayedFields, displayedValues per response). Then each path runs in a fresh subprocess:

* ours, CSV → Parquet:    ``ExportFile(zip, format="csv").write(out.parquet)``
* ours, NDJSON → Parquet: ``ExportFile(zip, format="ndjson").write(out.parquet)``
* baseline:               ``zipfile`` + ``pandas.read_csv`` + ``DataFrame.to_parquet``

and the table shows rows/s (conversion time measured in the child, interpreter start excluded)
and the child's peak RSS (``ru_maxrss`` from ``os.wait4``).

    .venv/bin/python bench/export.py              # 1,000,000 responses
    .venv/bin/python bench/export.py --rows 100000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
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


def _generate_csv(path: Path, rows: int) -> None:
    cols = _columns()
    rng = np.random.default_rng(7)
    part = path.with_suffix(".part")
    with (
        zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive,
        archive.open("Customer Satisfaction.csv", "w", force_zip64=True) as sink,
    ):
        header = pa.table(
            {
                f"c{i}": [c[0], c[1], json.dumps(c[2], separators=(",", ":"))]
                for i, c in enumerate(cols)
            }
        )
        pacsv.write_csv(header, sink, pacsv.WriteOptions(include_header=False))
        for start in range(0, rows, CHUNK):
            chunk = _chunk(rng, start, min(CHUNK, rows - start))
            table = pa.table({tag: chunk[tag] for tag, _, _, _ in cols})
            pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
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
    csv_zip = CACHE / f"export_{rows}.csv.zip"
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
    """Run one path in this (fresh) process; print {"rows", "seconds"} as JSON.

    Imports happen before the clock starts: the table compares conversion, not start-up.
    """
    if path_name == "pandas-csv":
        import pandas as pd

        began = time.perf_counter()
        cpu = time.process_time()
        with zipfile.ZipFile(source) as archive, archive.open(archive.namelist()[0]) as handle:
            frame = pd.read_csv(handle, skiprows=[1, 2])
        frame.to_parquet(dest)
        rows = len(frame)
    else:
        from qualflow.qualtrics.export_file import ExportFile

        began = time.perf_counter()
        cpu = time.process_time()
        fmt = "csv" if path_name == "ours-csv" else "ndjson"
        rows = ExportFile(source, format=fmt, compressed=True).write(dest)
    seconds = time.perf_counter() - began
    print(json.dumps({"rows": rows, "seconds": seconds, "cpu": time.process_time() - cpu}))


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
        size = os.path.getsize(dest)
    return {
        "rows": result["rows"],
        "seconds": result["seconds"],
        "cpu": result["cpu"],
        "rss_mb": report["maxrss_kb"] / 1024,
        "parquet_mb": size / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="responses (default 1e6)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per path; the fastest is shown (default 1)"
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("PATH", "SOURCE", "DEST"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    console = Console(width=160)
    csv_zip, ndjson_zip = ensure_inputs(args.rows, console)
    runs = [
        ("ours: CSV ZIP → Parquet", "ours-csv", csv_zip),
        ("ours: NDJSON ZIP → Parquet", "ours-ndjson", ndjson_zip),
        ("baseline: zipfile + pandas.read_csv → Parquet", "pandas-csv", csv_zip),
    ]
    results: dict[str, dict[str, float]] = {}
    for _ in range(max(1, args.repeat)):
        for label, name, source in runs:
            console.print(f"running {label} …")
            result = measure(name, source)
            best = results.get(name)
            if best is None or result["seconds"] < best["seconds"]:
                results[name] = result
    baseline = results["pandas-csv"]["rows"] / results["pandas-csv"]["seconds"]
    table = Table(
        title=f"Response export → Parquet, {args.rows:,} responses × 50 columns "
        f"(CSV ZIP {csv_zip.stat().st_size / 1e6:.0f} MB, "
        f"NDJSON ZIP {ndjson_zip.stat().st_size / 1e6:.0f} MB)"
    )
    for header in (
        "path",
        "rows",
        "seconds",
        "rows/s",
        "CPU s",
        "peak RSS MB",
        "vs baseline",
        "targets (≥300k rows/s, ≤400 MB, ≥3×)",
    ):
        table.add_column(header, justify="right" if header != "path" else "left")
    for label, name, _ in runs:
        r = results[name]
        rate = r["rows"] / r["seconds"]
        speedup = rate / baseline
        if name == "pandas-csv":
            verdict = "—"
        else:
            checks = [
                rate >= TARGET_ROWS_PER_S,
                r["rss_mb"] <= TARGET_RSS_MB,
                speedup >= TARGET_SPEEDUP,
            ]
            verdict = " ".join("✓" if ok else "✗" for ok in checks)
        table.add_row(
            label,
            f"{r['rows']:,.0f}",
            f"{r['seconds']:.2f}",
            f"{rate:,.0f}",
            f"{r['cpu']:.1f}",
            f"{r['rss_mb']:.0f}",
            f"{speedup:.1f}×",
            verdict,
        )
    console.print(table)
    console.print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end. Wall-clock "
        "figures shrink when other processes share the machine; CPU s is the path's own CPU "
        "time (all threads)."
    )


if __name__ == "__main__":
    main()
