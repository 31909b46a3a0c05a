"""openfer's cache directory and checksum-verified downloads into it.

Nothing in openfer downloads implicitly: readers, detectors and pretrained-weight loaders look in
the cache and, when a file is missing, say which file to fetch from where and where to put it;
:func:`download` is called only on explicit request.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import OpenferError
from .fileio import atomic_write_bytes


def openfer_home() -> Path:
    """openfer's cache directory: ``$OPENFER_HOME`` or ``~/.cache/openfer``."""
    return Path(os.environ.get("OPENFER_HOME") or Path.home() / ".cache" / "openfer")


def download(url: str, destination: Path, sha256: str | None, timeout: float = 120) -> Path:
    """Fetch ``url`` into ``destination`` atomically; a SHA-256 prefix, when given, must match."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except OSError as exc:
        raise OpenferError(f"cannot download {url} ({exc}); download it by hand and save it as "
                           f"{destination}") from None
    if sha256 and not hashlib.sha256(data).hexdigest().startswith(sha256.lower()):
        raise OpenferError(f"the file downloaded from {url} does not match its SHA-256")
    atomic_write_bytes(destination, data)
    return destination
