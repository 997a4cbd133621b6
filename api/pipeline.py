"""The steps every prediction route takes, in order and with their limits:

    admission (a slot, or 503 before the body is read) -> read the upload (size limit while it streams)
    -> decode and prepare in the decode pool (format, pixel limit, decode no larger than the model needs, model input)
    -> the model's batch queue (memory budget, timeout) -> the raw output

``decode_pool`` is the app's own thread pool (``decode_workers`` threads): decoding a 36 MP image takes a few
hundred megabytes for a moment, so only that many run at once, whatever the number of requests.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from dataclasses import dataclass

from fastapi import Request

from api.batching import Result
from api.config import Settings
from api.images import Decoded
from api.registry import ServedModel
from api.schemas import Timing
from api.upload import read_image_bytes


@dataclass
class Answer:
    decoded: Decoded
    result: Result
    timing: Timing


async def predict(request: Request, served: ServedModel, settings: Settings, *, tta: str) -> Answer:
    """Runs one upload through ``served`` (see the module docstring); APIError for anything the client caused."""
    start = time.perf_counter()
    pool: Executor = request.app.state.decode_pool
    async with served.worker.slot() as slot:
        data = await read_image_bytes(request)
        t_read = time.perf_counter()
        loop = asyncio.get_running_loop()
        decoded, tensor = await loop.run_in_executor(pool, served.decode_and_prepare, data, settings, tta)
        del data
        t_decode = time.perf_counter()
        nbytes = tensor.nelement() * tensor.element_size()
        result = await slot.submit(tensor, key=tta, timeout_s=settings.request_timeout_s, nbytes=nbytes)
    return Answer(decoded, result, Timing.of(start, t_read, t_decode, result))
