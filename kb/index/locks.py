"""A readers-writer lock: searches share an index, a change takes it alone for the moment it swaps state.

The threads of one process (gunicorn threads, Flask's threaded dev server) search
the same index objects. FAISS may search from many threads at once but not while
an index is added to or replaced, so searches read under `reading()` and the
short in-place changes run under `writing()`. Long work (building a new base)
happens outside it, and only the swap waits for the searches in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ReadWriteLock:
    """Many readers or one writer; a waiting writer holds off new readers so it is not starved.

    Not reentrant: a thread holding either side must not ask again.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._changed:
            while self._writing or self._writers_waiting:
                self._changed.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._changed:
                self._readers -= 1
                if not self._readers:
                    self._changed.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._changed:
            self._writers_waiting += 1
            while self._writing or self._readers:
                self._changed.wait()
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._changed:
                self._writing = False
                self._changed.notify_all()
