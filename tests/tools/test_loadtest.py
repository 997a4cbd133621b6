"""python -m api.loadtest (detector.tools.loadtest): real requests against a real server (uvicorn on loopback), with
sane figures in its report.

A few seconds of load per run keep this under a minute on 2 cores; the figures themselves come from running the
benchmark by hand (docs/serving.md)."""

from __future__ import annotations

import io
import json
import os

import pytest
from PIL import Image

from detector.tools import loadtest
from tests.support.paths import DEFAULT_DETECTOR as DETECTOR
from tests.support.server import running_server


def test_batch_totals_sums_the_histogram_over_models():
    text = """# HELP detector_batch_size images per inference call
# TYPE detector_batch_size histogram
detector_batch_size_bucket{le="1.0",model="a"} 1.0
detector_batch_size_bucket{le="+Inf",model="a"} 3.0
detector_batch_size_count{model="a"} 3.0
detector_batch_size_sum{model="a"} 7.0
detector_batch_size_created{model="a"} 1.7e+09
detector_batch_size_count{model="b"} 2.0
detector_batch_size_sum{model="b"} 2.0
detector_inference_seconds_sum{model="a"} 0.5
"""
    assert loadtest.batch_totals(text) == (9.0, 5.0)
    assert loadtest.batch_totals("") == (0.0, 0.0)


def test_memory_of_this_process():
    memory = loadtest.memory_mib(os.getpid())
    assert 10 < memory["rss"] <= memory["peak"]  # a Python process with torch imported holds well over 10 MiB


def test_default_image_is_a_real_jpeg_photograph():
    image = Image.open(io.BytesIO(loadtest.default_image()))
    assert image.format == "JPEG" and image.size == (512, 512)


def check_report(run: dict) -> None:
    assert run["requests"] > 0 and run["errors"] == 0 and run["statuses"] == {"200": run["requests"]}
    assert run["ok"] == run["requests"]
    assert run["requests_per_s"] == pytest.approx(run["ok"] / run["elapsed_s"])
    lat = run["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    # Every answered request went through exactly one inference call, and the warm-up phase is not counted.
    assert run["batches"]["images"] == run["ok"]
    assert run["batches"]["mean_batch_size"] >= 1


def test_compare_batching_against_the_started_server(tmp_path):
    out = tmp_path / "load.json"
    argv = ["--endpoint", "detect", "--models", f"default-detector={DETECTOR}",
            "--concurrency", "4", "--duration", "2.5", "--warmup", "1",
            "--compare-batching", "--max-batch-size", "8", "--max-wait-ms", "50", "--json", str(out)]  # fmt: skip
    assert loadtest.main(argv) == 0
    report = json.loads(out.read_text())
    off, on = report["runs"]
    for run in (off, on):
        check_report(run)
        memory = run["memory_mib"]
        assert 0 < memory["rss_before"] <= memory["peak"] and memory["rss_after"] <= memory["peak"]
    assert (off["max_batch_size"], on["max_batch_size"], on["max_wait_ms"]) == (1, 8, 50)
    assert off["batches"]["mean_batch_size"] == 1 and off["batches"]["calls"] == off["ok"]
    # 4 clients each with a request in flight and 50 ms to gather them: the worker batches several at a time.
    assert on["batches"]["mean_batch_size"] > 1


def test_url_drives_a_running_server_without_memory_figures(tmp_path, capsys):
    out = tmp_path / "load.json"
    with running_server({"models": {"default-detector": DETECTOR}}) as (url, _):
        assert (
            loadtest.main(
                [
                    "--url",
                    url,
                    "--concurrency",
                    "2",
                    "--duration",
                    "1.5",
                    "--warmup",
                    "0",
                    "--body",
                    "raw",
                    "--json",
                    str(out),
                ]
            )
            == 0
        )
    (run,) = json.loads(out.read_text())["runs"]
    check_report(run)
    assert run["memory_mib"] is None and run["url"] == url
    assert "--url" in capsys.readouterr().out  # the table was printed


def test_url_refuses_options_that_need_a_started_server():
    with pytest.raises(SystemExit):
        loadtest.parse_args(["--url", "http://127.0.0.1:1", "--compare-batching"])
