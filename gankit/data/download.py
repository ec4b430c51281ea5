"""Download one file from a list of mirrors, checked by SHA-256, written atomically.

A download streams into a temp file next to its destination and is renamed into place
only once its length and checksum are right, so an interrupted, truncated, 404 or
tampered download leaves nothing behind and a file that exists is always whole.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit
from pathlib import Path

from ..errors import GankitError
from ..files import atomic_write

# One timeout for connecting and for each read: short, so that an offline machine (or a
# firewall that drops packets) costs seconds per mirror, not the OS's minutes.
TIMEOUT = 5.0
CHUNK = 1 << 16
PROGRESS_MIN_BYTES = 1 << 20   # no progress bar for small files (labels)


class DownloadError(GankitError):
    """Every mirror failed; `reasons` holds (url, why) for each one."""

    def __init__(self, filename: str, reasons: list[tuple[str, str]], dest_dir: Path):
        self.filename = filename
        self.reasons = reasons
        tried = "; ".join(f"{url}: {why}" for url, why in reasons) or "no mirrors given"
        super().__init__(f"could not download {filename} ({tried}); put the file in "
                         f"{dest_dir} yourself or check the network")

    @property
    def summary(self) -> str:
        """A shorter form naming hosts, not URLs, for use inside other messages."""
        tried = "; ".join(f"{urlsplit(url).netloc}: {why}" for url, why in self.reasons)
        return f"could not download {self.filename} ({tried or 'no mirrors given'})"


class _Failed(Exception):
    """One mirror failed; the message says why (a short phrase)."""


def mirror_url(mirror: str, filename: str) -> str:
    return mirror.rstrip("/") + "/" + filename


def fetch(filename: str, mirrors: list[str], sha256: str, dest_dir: str | os.PathLike,
          timeout: float = TIMEOUT) -> Path:
    """Download `filename` into `dest_dir` from the first mirror that serves it intact.

    `mirrors` are base URLs (the filename is appended) tried in order. Returns the path;
    raises DownloadError naming the file and each mirror's failure.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / filename
    reasons = []
    for mirror in mirrors:
        url = mirror_url(mirror, filename)
        try:
            _download(url, dest, sha256.lower(), timeout)
            return dest
        except _Failed as e:
            reasons.append((url, str(e)))
    raise DownloadError(filename, reasons, dest_dir)


def _download(url: str, dest: Path, sha256: str, timeout: float) -> None:
    # A fresh temporary name: two processes may download the same file side by side. Any
    # failure, Ctrl-C included, removes it: no partial file survives.
    with atomic_write(dest, unique=True) as out:
        digest = _stream(url, out, timeout, dest.name)
        if digest != sha256:
            raise _Failed(f"checksum mismatch (SHA-256 {digest[:16]}..., expected "
                          f"{sha256[:16]}...)")


def _stream(url: str, out, timeout: float, label: str) -> str:
    """Copy the body of `url` to `out`; returns the SHA-256; raises _Failed."""
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            with _progress(expected, label) as bar:
                while chunk := resp.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise _Failed(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise _Failed(_reason(e.reason)) from None
    except (OSError, ValueError, http.client.HTTPException) as e:  # timeouts, resets, bad URLs
        raise _Failed(_reason(e)) from None
    if expected is not None and received != expected:
        raise _Failed(f"truncated ({received} of {expected} bytes)")
    return digest.hexdigest()


def _reason(err) -> str:
    if isinstance(err, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return " ".join(str(err).split()) or type(err).__name__


def _progress(total: int | None, label: str):
    from tqdm import tqdm
    # disable=None: tqdm draws only when stderr is a terminal, so tests and logs stay quiet.
    small = total is not None and total < PROGRESS_MIN_BYTES
    return tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
                leave=False, file=sys.stderr, disable=True if small else None)
