"""Load benchmark: start the real server (uvicorn, ``python -m api``), drive N concurrent clients at it for T seconds
on loopback, and report requests/s, latency percentiles, errors by status, the server's memory and the batch sizes
its inference workers actually ran.

    python -m api.loadtest --endpoint detect --concurrency 8 --duration 20
    python -m api.loadtest --compare-batching --max-batch-size 8 --max-wait-ms 10 25   # off, then on for each wait
    python -m api.loadtest --url http://gpu-box:8000 --concurrency 32 --duration 60    # a server already running

Every client is an asyncio task with its own request in flight: it sends the image, waits for the answer, and sends
it again at once (a closed loop), so the offered load is ``--concurrency`` requests at a time. Requests run for
``--warmup`` seconds first and are not counted. Latency is measured per successful (2xx) request, from sending to
the whole answer read. The batch sizes come from the server's own ``detector_batch_size`` histogram (GET /metrics,
read before and after the measured phase). Memory is the server process's VmRSS (and VmHWM, its peak) from
/proc/PID/status, so it is only reported for a server this script started. The clients share the machine with the
server: on a small CPU box they take part of its cores, and any other job running there changes the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

DEFAULT_MODELS = {
    "detect": {"default-detector": "weights/default-detector.pt"},
    "classify": {"default-classifier": "weights/default-classifier.pt"},
}


# --------------------------------------------------------------------------------------------
# What is sent and what is measured


def default_image() -> bytes:
    """A real photograph (scikit-image's astronaut, 512 x 512) as a JPEG."""
    try:
        from skimage import data  # noqa: PLC0415 (optional dependency: scikit-image is in the dev extra)
    except ImportError:
        raise SystemExit(
            "the default image comes from scikit-image (pip install -e '.[dev]'); or send a file with --image PATH"
        ) from None

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def memory_mib(pid: int) -> dict[str, float]:
    """The process's resident memory now (VmRSS) and at its peak so far (VmHWM), in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024  # kB
    return {"rss": values["VmRSS"], "peak": values["VmHWM"]}


def batch_totals(metrics_text: str) -> tuple[float, float]:
    """(images, inference calls) from the ``detector_batch_size`` histogram in Prometheus text, summed over models."""
    images = calls = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("detector_batch_size_sum"):
            images += float(line.rsplit(" ", 1)[1])
        elif line.startswith("detector_batch_size_count"):
            calls += float(line.rsplit(" ", 1)[1])
    return images, calls


@dataclass
class Samples:
    latencies_s: list[float] = field(default_factory=list)  # successful requests only
    statuses: Counter = field(default_factory=Counter)  # "200", "503", ... or the transport error's name
    queue_ms: list[float] = field(default_factory=list)  # the server's own timing, from the answers
    inference_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0


async def drive(
    url: str,
    endpoint: str,
    image: bytes,
    *,
    concurrency: int,
    seconds: float,
    body: str,
    timeout_s: float,
    honour_retry_after: bool = True,
) -> Samples:
    """``concurrency`` closed-loop clients for ``seconds``; a request started before the end is waited for. A client
    answered 503 waits the Retry-After it was given before its next request, as HTTP asks of clients (and load
    balancers do), unless ``honour_retry_after`` is False: then it retries at once."""
    samples = Samples()
    headers = {"X-API-Key": os.environ["DETECTOR_API_API_KEY"]} if os.environ.get("DETECTOR_API_API_KEY") else {}
    if body == "raw":
        request = {"content": image, "headers": {**headers, "content-type": "image/jpeg"}}
    else:
        request = {"files": {"image": ("image.jpg", image, "image/jpeg")}, "headers": headers}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client(http: httpx.AsyncClient, deadline: float) -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                response = await http.post(f"/{endpoint}", **request)
            except httpx.HTTPError as exc:  # refused, reset, timed out: an error, not a crash of the benchmark
                samples.statuses[type(exc).__name__] += 1
                continue
            seconds_taken = time.perf_counter() - start
            samples.statuses[str(response.status_code)] += 1
            retry_after = response.headers.get("retry-after")
            if response.status_code == 503 and retry_after and honour_retry_after:
                await asyncio.sleep(min(float(retry_after), max(0.0, deadline - time.perf_counter())))
            if response.is_success:
                samples.latencies_s.append(seconds_taken)
                timing = response.json()["timing_ms"]
                samples.queue_ms.append(timing["queue"])
                samples.inference_ms.append(timing["inference"])

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout_s) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http, start + seconds) for _ in range(concurrency)))
        samples.elapsed_s = time.perf_counter() - start
    return samples


# --------------------------------------------------------------------------------------------
# The server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def start_server(
    env_settings: dict[str, str], *, ready_timeout_s: float = 300.0
) -> Iterator[tuple[str, subprocess.Popen]]:
    """``python -m api`` on a free loopback port with ``env_settings`` (DETECTOR_API_* variables) on top of this
    process's environment; yields (URL, process) once /readyz answers 200, and stops it with SIGTERM afterwards."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "api",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with serve_until_done(cmd, port, env={**os.environ, **env_settings}, ready_timeout_s=ready_timeout_s) as (
        url,
        proc,
    ):
        yield url, proc


@contextmanager
def serve_until_done(
    cmd: list[str], port: int, *, env: dict[str, str], cwd: str | Path | None = None, ready_timeout_s: float = 300.0
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run the server command ``cmd`` (listening on loopback ``port``); yield (URL, process) once /readyz answers 200;
    SIGTERM it afterwards. Its output is kept in a temporary log that errors quote."""
    log = tempfile.NamedTemporaryFile("w+", prefix=f"detector-api-{port}-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {proc.returncode} before it was ready:\n{Path(log.name).read_text()}"
                )
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the server was not ready within {ready_timeout_s:g} s:\n{Path(log.name).read_text()}"
                )
            time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        os.unlink(log.name)


# --------------------------------------------------------------------------------------------
# One run and its report


def scrape_batches(url: str) -> tuple[float, float] | None:
    try:
        response = httpx.get(f"{url}/metrics", timeout=10)
    except httpx.HTTPError:
        return None
    return batch_totals(response.text) if response.status_code == 200 else None


def measure(url: str, image: bytes, args: argparse.Namespace, pid: int | None) -> dict:
    """Warm up, then drive the measured phase; the report's numbers (latencies in ms, memory in MiB)."""
    memory_before = memory_mib(pid) if pid else None
    drive_args = dict(
        concurrency=args.concurrency,
        body=args.body,
        timeout_s=args.timeout,
        honour_retry_after=not args.ignore_retry_after,
    )
    if args.warmup > 0:
        asyncio.run(drive(url, args.endpoint, image, seconds=args.warmup, **drive_args))
    batches_before = scrape_batches(url)
    samples = asyncio.run(drive(url, args.endpoint, image, seconds=args.duration, **drive_args))
    batches_after = scrape_batches(url)
    memory_after = memory_mib(pid) if pid else None

    requests = sum(samples.statuses.values())
    ok = len(samples.latencies_s)
    latency = None
    if ok:
        ms = np.asarray(samples.latencies_s) * 1000
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        latency = {
            "mean": float(ms.mean()),
            "p50": float(p50),
            "p95": float(p95),
            "p99": float(p99),
            "max": float(ms.max()),
        }
    batches = None
    if batches_before is not None and batches_after is not None:
        images, calls = batches_after[0] - batches_before[0], batches_after[1] - batches_before[1]
        batches = {"images": int(images), "calls": int(calls), "mean_batch_size": images / calls if calls else None}
    return {
        "requests": requests,
        "ok": ok,
        "errors": requests - ok,
        "statuses": dict(sorted(samples.statuses.items())),
        "elapsed_s": samples.elapsed_s,
        "requests_per_s": ok / samples.elapsed_s,
        "latency_ms": latency,
        "server_timing_ms": {
            "queue_mean": float(np.mean(samples.queue_ms)),
            "inference_mean": float(np.mean(samples.inference_ms)),
        }
        if ok
        else None,
        "batches": batches,
        "memory_mib": (
            {"rss_before": memory_before["rss"], "rss_after": memory_after["rss"], "peak": memory_after["peak"]}
            if pid
            else None
        ),
    }


def batching_runs(args: argparse.Namespace) -> list[tuple[str, int, float]]:
    """(label, max_batch_size, max_wait_ms) per run: batching off first when comparing, then one per wait."""
    if args.max_batch_size == 1:
        return [("batching off", 1, 0.0)]
    runs = [("batching off", 1, 0.0)] if args.compare_batching else []
    return runs + [(f"on: {args.max_batch_size} / {w:g} ms", args.max_batch_size, w) for w in args.max_wait_ms]


def parse_models(pairs: list[str] | None, endpoint: str) -> dict[str, str]:
    if not pairs:
        return dict(DEFAULT_MODELS[endpoint])
    models = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--models expects NAME=PATH, got {pair!r}")
        models[name] = path
    return models


def format_table(reports: list[dict]) -> str:
    header = (
        f"{'run':<22} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6} {'batch':>6} "
        f"{'queue ms':>8} {'infer ms':>8} {'RSS MiB before > after (peak)':>30}"
    )
    lines = [header, "-" * len(header)]
    nan = float("nan")
    for r in reports:
        lat = r["latency_ms"] or {}
        batch = (r["batches"] or {}).get("mean_batch_size")
        timing = r["server_timing_ms"] or {}
        mem = r["memory_mib"]
        memory = f"{mem['rss_before']:.0f} > {mem['rss_after']:.0f} ({mem['peak']:.0f})" if mem else "-"
        lines.append(
            f"{r['label']:<22} {r['requests_per_s']:>7.2f} "
            f"{lat.get('p50', nan):>8.1f} {lat.get('p95', nan):>8.1f} {lat.get('p99', nan):>8.1f} "
            f"{r['errors']:>6} {batch if batch is not None else nan:>6.2f} "
            f"{timing.get('queue_mean', nan):>8.1f} {timing.get('inference_mean', nan):>8.1f} {memory:>30}"
        )
        if r["errors"]:
            lines.append(f"{'':<22} statuses: {r['statuses']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m api.loadtest", description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", choices=["detect", "classify"], default="detect", help="(default: %(default)s)")
    p.add_argument(
        "--concurrency", type=int, default=8, help="clients, each with one request in flight (default: %(default)s)"
    )
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per run (default: %(default)s)")
    p.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of load before measuring, not counted (default: %(default)s)"
    )
    p.add_argument(
        "--image",
        type=Path,
        default=None,
        help="image file to send (default: scikit-image's astronaut photograph as a JPEG)",
    )
    p.add_argument(
        "--body",
        choices=["multipart", "raw"],
        default="multipart",
        help="send the image as the multipart field 'image' or as the raw body (default: %(default)s)",
    )
    p.add_argument(
        "--max-batch-size",
        type=int,
        default=8,
        help="DETECTOR_API_MAX_BATCH_SIZE of the started server; 1 turns batching off (default: %(default)s)",
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        nargs="+",
        default=[10.0],
        help="DETECTOR_API_MAX_WAIT_MS; several values: one run each (default: 10)",
    )
    p.add_argument(
        "--compare-batching",
        action="store_true",
        help="run with batching off (max_batch_size=1) first, then on, and print a table",
    )
    p.add_argument(
        "--models",
        nargs="+",
        metavar="NAME=PATH",
        help="DETECTOR_API_MODELS of the started server "
        "(default: weights/default-detector.pt, or weights/default-classifier.pt for classify)",
    )
    p.add_argument(
        "--device", default=None, help="DETECTOR_API_DEVICE of the started server (default: the server's own, 'auto')"
    )
    p.add_argument(
        "--timeout", type=float, default=60.0, help="client timeout per request, seconds (default: %(default)s)"
    )
    p.add_argument(
        "--url",
        default=None,
        help="drive this already-running server instead of starting one (no memory figures, one run)",
    )
    p.add_argument("--queue-size", type=int, default=None, help="DETECTOR_API_QUEUE_SIZE of the started server")
    p.add_argument(
        "--ignore-retry-after",
        action="store_true",
        help="clients answered 503 retry at once instead of waiting the Retry-After they were given",
    )
    p.add_argument("--json", type=Path, default=None, help="write the reports here as JSON")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.url and (args.compare_batching or args.models or args.device or len(args.max_wait_ms) > 1):
        p.error(
            "--url drives a server as it is configured: "
            "--compare-batching, --models, --device and several --max-wait-ms need a started server"
        )
    if args.compare_batching and args.max_batch_size < 2:
        p.error("--compare-batching needs --max-batch-size >= 2 for the run with batching on")
    if args.concurrency < 1 or args.duration <= 0 or args.warmup < 0:
        p.error("--concurrency must be >= 1, --duration > 0 and --warmup >= 0")
    return args


def run_started_servers(args: argparse.Namespace, image: bytes, common: dict) -> list[dict]:
    """One started server per batching setting (``batching_runs``), measured in turn; the reports in that order.
    Raises RuntimeError when a server does not come up."""
    models = parse_models(args.models, args.endpoint)
    reports = []
    for label, max_batch_size, max_wait_ms in batching_runs(args):
        env = {
            "DETECTOR_API_MODELS": json.dumps(models),
            "DETECTOR_API_MAX_BATCH_SIZE": str(max_batch_size),
            "DETECTOR_API_MAX_WAIT_MS": str(max_wait_ms),
            **({"DETECTOR_API_QUEUE_SIZE": str(args.queue_size)} if args.queue_size else {}),
        }
        if args.device:
            env["DETECTOR_API_DEVICE"] = args.device
        print(
            f"{label}: starting the server (max_batch_size={max_batch_size}, max_wait_ms={max_wait_ms:g}) ...",
            flush=True,
        )
        with start_server(env) as (url, proc):
            result = measure(url, image, args, pid=proc.pid)
        reports.append(
            {
                "label": label,
                "max_batch_size": max_batch_size,
                "max_wait_ms": max_wait_ms,
                "models": models,
                **common,
                **result,
            }
        )
    return reports


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    image = args.image.read_bytes() if args.image else default_image()
    environment = {
        "cpu_count": os.cpu_count(),
        "loadavg_1m_before": os.getloadavg()[0],
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "image_bytes": len(image),
    }
    print(
        f"{args.endpoint}: {args.concurrency} clients x {args.duration:g} s (+{args.warmup:g} s warm-up), "
        f"{len(image)} byte image, {environment['cpu_count']} CPUs, "
        f"load average {environment['loadavg_1m_before']:.2f} before",
        flush=True,
    )
    common = {
        "endpoint": args.endpoint,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "body": args.body,
    }
    if args.url:
        reports = [{"label": "--url", "url": args.url, **common, **measure(args.url, image, args, pid=None)}]
    else:
        try:
            reports = run_started_servers(args, image, common)
        except RuntimeError as exc:
            print(f"python -m api.loadtest: {exc}", file=sys.stderr)
            return 1
    print(format_table(reports))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"environment": environment, "runs": reports}, indent=2))
    return 0
