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

    # Instructions per request, counted by callgrind: every variant, telemetry adds to `off`;
    # exactly one request in ten sampled; push's export measured and amortised.
    # valgrind is installed by `make test` (scripts/install-tools.sh): the phase must run here.
    assert shutil.which("valgrind"), "valgrind missing: `make tools` installs it"
    rows = report["instructions"]["rows"]
    assert list(rows) == ["off", "pull", "pull-traces", "push"]
    assert rows["off"]["ratio"] == 1.0
    for name in ("pull", "pull-traces", "push"):
        assert rows[name]["added"] > 0, (name, rows[name])
    assert rows["pull-traces"]["sampled"] == rows["pull-traces"]["requests"] // 10
    assert rows["push"]["export"] > 0
    text = (tmp_path / "smoke-latest.md").read_text()
    assert text.index("### Instructions per request") < text.index("### Throughput")

    throughput = report["throughput"]
    assert {"off", "pull", "pull-traces", "push", "otel-stock", "pfi"} <= set(throughput)
    for name, row in throughput.items():
        assert row["rps"] > 0, name
        assert row["errors"] == 0 and row["non2xx"] == 0, (name, row)
        assert "ratio" in row

    # Pull serves gzip when asked; push and traces really exported to the local receiver.
    assert report["http_scrape"]["gzip"]
    assert report["sink"].get("/v1/metrics", 0) > 0
    assert report["sink"].get("/v1/traces", 0) > 0

    # Random paths and Host headers added no series.
    cardinality = report["cardinality"]
    assert cardinality["requests"] >= 2000
    assert cardinality["series_after"] == cardinality["series_before"], cardinality

    # Our exposition holds exactly prometheus_client's samples for the same series.
    assert [row["same_series"] for row in report["scrape_rows"]] == [True, True]
    assert (tmp_path / "smoke-latest.md").read_text().startswith("Machine:")
