"""A bounded, thread-safe pool of reusable objects (batches, read buffers).

Everything is allocated when the pool is created; :meth:`Pool.acquire` blocks while every item is
lent out, which is how a fast producer is slowed to the pace of a slow consumer (backpressure)
without memory growing.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class PoolClosed(RuntimeError):
    """The pool was closed while waiting for an item."""


class Pool(Generic[T]):
    """``size`` items made by ``factory``; ``reset`` runs on each item as it comes back."""

    def __init__(self, factory: Callable[[], T], size: int, reset: Callable[[T], None] | None = None) -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self._free: deque[T] = deque(factory() for _ in range(size))
        self._all_ids = {id(x) for x in self._free}
        self._reset = reset
        self._cond = threading.Condition()
        self._closed = False
        self.size = size
        self.waits = 0  # how often acquire had to block: a backpressure gauge

    @property
    def available(self) -> int:
        with self._cond:
            return len(self._free)

    @property
    def in_use(self) -> int:
        return self.size - self.available

    def acquire(self, timeout: float | None = None) -> T:
        """Take an item, waiting while none is free. Raises TimeoutError or PoolClosed."""
        with self._cond:
            if not self._free and not self._closed:
                self.waits += 1
            ok = self._cond.wait_for(lambda: self._free or self._closed, timeout)
            if self._closed:
                raise PoolClosed("pool closed")
            if not ok:
                raise TimeoutError("no pool item became free in time")
            return self._free.popleft()

    def release(self, item: T) -> None:
        """Give an item back (reset first). Releasing a foreign or already free item is an error."""
        if id(item) not in self._all_ids:
            raise ValueError("item does not belong to this pool")
        if self._reset is not None:
            self._reset(item)
        with self._cond:
            if any(x is item for x in self._free):
                raise ValueError("item released twice")
            self._free.append(item)
            self._cond.notify()

    @contextmanager
    def borrow(self, timeout: float | None = None) -> Iterator[T]:
        item = self.acquire(timeout)
        try:
            yield item
        finally:
            self.release(item)

    def close(self) -> None:
        """Wake every waiter with PoolClosed (used when a pipeline stops)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class BatchPool(Pool["Batch"]):
    """A pool of :class:`~nebula.batch.Batch` of one schema and capacity."""

    def __init__(self, schema, capacity: int, size: int, **batch_opts) -> None:
        from .batch import Batch

        self.schema = schema
        self.capacity = capacity
        super().__init__(lambda: Batch(schema, capacity, **batch_opts), size, reset=Batch.reset)
