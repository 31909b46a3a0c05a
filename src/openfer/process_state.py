"""Process-wide state that openfer changes for a moment, changed under one lock.

``warnings.catch_warnings`` saves the process's list of warning filters on entry and puts it
back on exit (before Python 3.14 there are no context-local warning filters), and PIL's
decompression-bomb limit is the module global ``PIL.Image.MAX_IMAGE_PIXELS``. Two threads
inside such a block at once restore each other's state and leave the wrong one behind: measured,
8 threads decoding 300 uploads each left an ``error`` filter for PIL's ``DecompressionBombWarning``
in the process for good. ``openfer serve`` decodes uploads in a thread pool while its batching
thread may trace a model (which records the tracer's warnings), so every such temporary change in
openfer goes through :data:`LOCK`, held only as long as the change is needed. Code outside openfer
that changes the same state from another thread at the same moment is not covered. PyTorch's
oneDNN Graph switch, which every fused inference call turns on, is not locked for the call's
length but counted (``openfer.models.fusion._onednn_fusion``): calls overlap freely, and the last
one to leave restores it.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator

#: Held while openfer has the process's warning filters or PIL's pixel limit changed.
LOCK = threading.RLock()


@contextlib.contextmanager
def catching_warnings(*, record: bool = False) -> Iterator[list | None]:
    """``warnings.catch_warnings(record=record)`` holding :data:`LOCK`: filters set inside are
    undone on exit, and no other openfer thread changes them meanwhile."""
    with LOCK, warnings.catch_warnings(record=record) as caught:
        yield caught
