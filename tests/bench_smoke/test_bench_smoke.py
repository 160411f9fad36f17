"""`make bench` in miniature: every phase of the harness runs and checks what it measures.
Timings are printed by the harness, never asserted here (CI machines vary)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_smoke(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "smoke-latest.json").read_text())
    text = (tmp_path / "smoke-latest.md").read_text()
    assert text.startswith("Machine:")

    # Instructions per request, counted by callgrind, for every variant: telemetry adds to
    # `off`; exactly one request in ten sampled; push's export measured and amortised.
    # valgrind is installed by `make test` (scripts/install-tools.sh): the phase must run here.
    assert shutil.which("valgrind"), "valgrind missing: `make tools` installs it"
    rows = report["instructions"]["rows"]
    assert list(rows) == ["off", "floor", "pull", "pull-traces", "push", "pfi", "otel-stock"]
    assert rows["off"]["ratio"] == 1.0
    # A memory layout moves a count by about as much as pull or the floor add (~30 k): at
    # N = 10 one layout moved `off` by 300 k (twice in CI), at N = 40 the spread is ~50 k.
    # Only the large differences are certain here; every verdict is printed, measurable or not.
    assert all(row["ir"] > 3_000_000 for row in rows.values()), rows
    assert rows["otel-stock"]["added"] > rows["pfi"]["added"] > 150_000, rows
    assert rows["pull-traces"]["added"] > 100_000, rows["pull-traces"]
    assert rows["pull-traces"]["sampled"] == rows["pull-traces"]["requests"] // 10
    assert rows["push"]["export"] > 0
    # A scrape's and a push export's cost, counted the same way.
    collections = report["instructions"]["collections"]["rows"]
    assert list(collections) == ["scrape", "scrape, 4 workers", "export"]
    assert all(row["per_series"] > 0 for row in collections.values()), collections
    assert text.index("### Instructions per request") < text.index("### Throughput")
    assert "goal ≤ 50 k" in text and "goal ≤ 250 k" in text and "goal ≤ 2 times" in text

    # Every variant served, side by side, without an error; ratios against `off`.
    throughput = report["throughput"]
    assert list(throughput) == list(rows)
    for name, row in throughput.items():
        assert row["rps"] > 0 and row["ratio"] > 0, name
        assert row["errors"] == 0 and row["non2xx"] == 0, (name, row)
    # Push and traces really exported to the local receiver.
    assert report["sink"].get("/v1/metrics", 0) > 0
    assert report["sink"].get("/v1/traces:spans", 0) > 0

    # Random paths and Host headers added no series; pull serves gzip when asked.
    cardinality = report["cardinality"]
    assert cardinality["requests"] >= 2000
    assert cardinality["series_after"] == cardinality["series_before"], cardinality
    assert report["gzip"]

    # Our exposition holds exactly prometheus_client's samples for the same series.
    assert [row["same_series"] for row in report["scrape_rows"]] == [True, True]
