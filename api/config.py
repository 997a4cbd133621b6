"""The service's settings: one pydantic ``Settings``, read from ``DETECTOR_API_*`` environment variables and,
optionally, a JSON or TOML file named by ``DETECTOR_API_CONFIG``. Environment variables win over the file.

    DETECTOR_API_DEVICE=cuda DETECTOR_API_MAX_BATCH_SIZE=16 uvicorn api.main:app
    DETECTOR_API_MODELS='{"voc": "runs/vgg16/best.pt"}' DETECTOR_API_DEFAULT_DETECTOR=voc uvicorn api.main:app

Nothing here is global: ``create_app(settings)`` takes an instance, and tests build their own.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

CONFIG_ENV = "DETECTOR_API_CONFIG"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DETECTOR_API_", extra="forbid")

    # Models: name -> checkpoint path. Each checkpoint says what it is (detector kind or classifier) and carries its
    # class names and config, so a path is all the service needs.
    models: dict[str, Path] = Field(
        default_factory=lambda: {
            "default-detector": Path("weights/default-detector.pt"),
            "default-classifier": Path("weights/default-classifier.pt"),
        },
        description="model name -> checkpoint path (detectors and classifiers; the checkpoint says which)",
    )
    default_detector: str | None = Field(
        None, description="model /detect uses without ?model= (default: the first detector listed)"
    )
    default_classifier: str | None = Field(
        None, description="model /classify uses without ?model= (default: the first classifier listed)"
    )

    device: str = Field("auto", description="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1'")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto",
        description="autocast dtype for inference: 'auto' is bf16 on a GPU with bf16 (fp16 on older GPUs) and on a "
        "CPU with AMX, "
        "fp32 on other CPUs (GET /models says which and why); fp16 needs CUDA",
    )
    warmup: bool = Field(True, description="run each model once on a blank image before reporting ready")

    # Batching: one inference worker per model groups waiting images.
    max_batch_size: int = Field(
        8, ge=1, le=256, description="most images one inference call takes (1 turns batching off)"
    )
    max_wait_ms: float = Field(
        10.0, ge=0, le=10_000, description="how long a worker waits for more images before running a batch"
    )
    queue_size: int = Field(64, ge=1, description="images waiting per model before new requests get 503")
    request_timeout_s: float = Field(
        30.0, gt=0, description="a request still waiting for its answer after this gets 504"
    )
    retry_after_s: int = Field(1, ge=0, description="Retry-After sent with 503 when the queue is full")
    max_queue_mb: int = Field(
        512, ge=1, description="memory of the model inputs waiting per model (MiB) before new requests get 503"
    )
    decode_workers: int = Field(
        2, ge=1, le=64, description="uploads decoded at once (each may take a few hundred MB for a moment)"
    )

    # Limits on what a client may send.
    max_upload_bytes: int = Field(
        20 * 1024 * 1024, ge=1, description="largest request body, enforced while it streams in (413)"
    )
    max_image_pixels: int = Field(
        40_000_000, ge=1, description="largest width x height decoded (413): decompression-bomb guard"
    )
    allowed_formats: list[str] = Field(
        default_factory=lambda: ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"],
        description="image formats accepted, recognised by content (415)",
    )

    api_key: SecretStr | None = Field(
        None, description="when set, /detect, /classify, /models and /metrics need it in the X-API-Key header"
    )
    metrics_public: bool = Field(
        False, description="serve /metrics without the API key (for a scraper that cannot send headers)"
    )
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed by CORS (empty: CORS off)")

    @field_validator("api_key")
    @classmethod
    def _real_key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().strip():
            raise ValueError("the API key is empty or whitespace: unset DETECTOR_API_API_KEY, or give it a real key")
        return v

    @field_validator("allowed_formats")
    @classmethod
    def _upper(cls, v: list[str]) -> list[str]:
        return [f.upper() for f in v]

    @model_validator(mode="after")
    def _defaults_named(self) -> Settings:
        for which in ("default_detector", "default_classifier"):
            name = getattr(self, which)
            if name is not None and name not in self.models:
                raise ValueError(f"{which} {name!r} is not one of the configured models {sorted(self.models)}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _ConfigFileSource(settings_cls)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings in a ``.json`` or ``.toml`` file (keys as in ``Settings``), with an error naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{CONFIG_ENV}={path}: cannot read the config file ({exc.strerror})") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(
            f"{CONFIG_ENV}={path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({exc})"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{CONFIG_ENV}={path}: expected a table/object of settings")
    return data


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Settings from the file named by DETECTOR_API_CONFIG (lowest priority)."""

    def get_field_value(self, field, field_name):  # required by the base class; __call__ does the work
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(CONFIG_ENV)
        return read_config_file(path) if path else {}
