"""Run the service with uvicorn: ``python -m api [--host 127.0.0.1] [--port 8000] [--workers 1] [--log-level info]``.

The settings come from DETECTOR_API_* environment variables and the file named by DETECTOR_API_CONFIG, exactly as
for ``uvicorn api.main:app``; this module only prints them (never the API key) and passes the server options on.
On SIGTERM uvicorn stops accepting connections and lets the requests in flight finish (up to --graceful-timeout),
then the app's lifespan drains the batching queues.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn
from pydantic import ValidationError

from api.config import Settings
from detector.classify.torchvision_imagenet import fetch_hint
from detector.core.devices import device_from_name
from detector.core.precision import resolve_precision


def describe(settings: Settings) -> str:
    """A few lines with the settings that decide what runs and how it batches; the API key only as set/not set."""
    s = settings
    models = ", ".join(f"{name}={path}" for name, path in s.models.items())
    return "\n".join(
        [
            f"models: {models}",
            f"device: {s.device}, precision: {s.precision}{_chosen_precision(s)}, warmup: {s.warmup}",
            f"batching: max_batch_size={s.max_batch_size}, max_wait_ms={s.max_wait_ms:g}, queue_size={s.queue_size}, "
            f"request_timeout_s={s.request_timeout_s:g}",
            f"api key: {'set' if s.api_key is not None else 'not set'}, cors: {', '.join(s.cors_origins) or 'off'}, "
            f"max_upload_bytes={s.max_upload_bytes}",
        ]
    )


def _chosen_precision(s: Settings) -> str:
    """ " -> bf16 (auto: ... has AMX, ...)" when the setting is auto: what the models will run at, and why."""
    if s.precision != "auto":
        return ""
    try:
        return f" -> {resolve_precision(s.precision, device_from_name(s.device))}"
    except ValueError:
        return ""  # a bad device is reported when the models load


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m api",
        description="Serve api.main:app with uvicorn. Settings: DETECTOR_API_* environment variables or "
        "DETECTOR_API_CONFIG=file.json|toml.",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind; 0.0.0.0 for every interface, as in a container (default: %(default)s)",
    )
    p.add_argument("--port", type=int, default=8000, help="(default: %(default)s)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes; each loads every model, so on a GPU at most one per GPU (default: %(default)s)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="(default: %(default)s)",
    )
    p.add_argument(
        "--graceful-timeout",
        type=float,
        default=None,
        help="seconds a SIGTERM waits for requests in flight (default: the request timeout)",
    )
    p.add_argument("--no-access-log", action="store_true", help="do not log every request (logged by default)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = Settings()
    except (ValidationError, ValueError) as exc:
        print(f"python -m api: invalid settings: {exc}", file=sys.stderr)
        return 2
    missing = {name: path for name, path in settings.models.items() if not path.is_file()}
    if missing:
        # torchvision's ImageNet files (weights/resnet50-0676ba61.pth): the command that downloads each
        fetch = "".join(f"{path}: {hint}. " for path in missing.values() if (hint := fetch_hint(path)))
        print(
            f"python -m api: checkpoint(s) not found: {', '.join(f'{n}={p}' for n, p in missing.items())}. {fetch}"
            "Train the defaults with 'make default-detector' / 'make default-classifier', or name your own in "
            'DETECTOR_API_MODELS=\'{"name": "path.pt"}\'',
            file=sys.stderr,
        )
        return 2
    graceful = settings.request_timeout_s if args.graceful_timeout is None else args.graceful_timeout
    print(describe(settings), flush=True)
    print(
        f"serving on http://{args.host}:{args.port} with {args.workers} worker(s); SIGTERM waits up to {graceful:g} s "
        "for requests in flight",
        flush=True,
    )
    # The import string (not an app object): each worker process builds its own app from the same settings.
    uvicorn.run(
        "api.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=not args.no_access_log,
        timeout_graceful_shutdown=graceful,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
