"""Micro-batching: faces from requests that arrive together are classified together.

Each request hands its aligned face crops to :meth:`MicroBatcher.classify` and awaits the
probabilities. One worker takes every request waiting (up to ``max_batch`` faces), optionally
waits ``window_ms`` for more company, runs the model once on all of them in a thread of its own,
and hands every request its rows. Requests that arrive while a batch runs form the next batch,
so under load the batches fill up by themselves and the network runs at its batch throughput
instead of its batch-1 latency; alone, a request waits for nobody (``window_ms`` 0, the
default) or at most ``window_ms``. ``max_batch=1`` turns batching off (one request at a time), which
``benchmarks/serve_load.py`` uses as the baseline.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np


class MicroBatcher:
    def __init__(self, classify: Callable[[np.ndarray], np.ndarray], *, max_batch: int = 64,
                 window_ms: float = 0.0):
        self._classify = classify
        self.max_batch = max(1, int(max_batch))
        self.window = max(0.0, float(window_ms)) / 1000.0
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="openfer-classify")
        self.batches = 0
        self.faces = 0
        self.busy_seconds = 0.0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def classify(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities for the crops ``(N, H, W, C)``, classified with other requests' faces."""
        if len(crops) == 0:
            return np.zeros((0, 0), np.float32)
        if self._queue is None:
            raise RuntimeError("the batcher is not started")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((crops, future))
        return await future

    def stats(self) -> dict:
        return {"batches": self.batches, "faces": self.faces,
                "mean_batch": round(self.faces / self.batches, 2) if self.batches else None,
                "max_batch": self.max_batch, "window_ms": self.window * 1000,
                "busy_s": round(self.busy_seconds, 2),
                "waiting": self._queue.qsize() if self._queue else 0}

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self._queue.get()]
            count = len(items[0][0])
            deadline = loop.time() + self.window
            while count < self.max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                items.append(item)
                count += len(item[0])
            while count < self.max_batch and self.window > 0:
                timeout = deadline - loop.time()
                try:
                    item = (self._queue.get_nowait() if timeout <= 0 else
                            await asyncio.wait_for(self._queue.get(), timeout))
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
                items.append(item)
                count += len(item[0])
            live = [(crops, f) for crops, f in items if not f.cancelled()]
            if not live:
                continue
            start = time.perf_counter()
            try:
                probs = await loop.run_in_executor(
                    self._executor, self._classify, np.concatenate([c for c, _ in live]))
            except Exception as exc:          # the model failed: every waiting request hears it
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.busy_seconds += time.perf_counter() - start
            self.batches += 1
            self.faces += len(probs)
            offset = 0
            for crops, future in live:
                if not future.done():
                    future.set_result(probs[offset:offset + len(crops)])
                offset += len(crops)
