"""Download dataset archives with checksums and resume, then extract them into one root.

The config names each archive by URL and SHA-256 (for example the public nuScenes v1.0-mini and
lidarseg-mini archives). Partial downloads are kept as `<name>.part` in a cache folder beside the
output and resumed with an HTTP Range request; the extracted root appears only when every archive
has been verified and unpacked.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from weak3d.io import atomic_path

log = logging.getLogger(__name__)
CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, dest: Path, sha256: str, timeout: float = 60.0) -> Path:
    """Download `url` to `dest`, resuming a `.part` file; verify its SHA-256 before renaming."""
    if dest.exists() and sha256_of(dest) == sha256:
        return dest
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            # 206: the server resumed; 200: it ignored the range, so start over.
            mode = "ab" if offset and response.status == 206 else "wb"
            if mode == "wb" and offset:
                log.info("%s: server does not resume, downloading from the start", url)
            with open(part, mode) as f:
                shutil.copyfileobj(response, f, CHUNK)
    except urllib.error.HTTPError as err:
        if err.code == 416 and part.exists():  # range past the end: the .part is already complete
            pass
        else:
            raise RuntimeError(f"download of {url} failed: HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        raise RuntimeError(f"download of {url} failed: {err.reason} (partial file kept at {part})") from err
    actual = sha256_of(part)
    if actual != sha256:
        part.unlink()
        raise RuntimeError(
            f"download of {url}: SHA-256 mismatch (expected {sha256}, got {actual}); the file was removed"
        )
    part.rename(dest)
    return dest


def extract(archive: Path, into: Path) -> None:
    """Unpack a tar (any compression) or zip archive into `into`, refusing paths that escape it."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if Path(name).is_absolute() or ".." in Path(name).parts:
                    raise ValueError(f"{archive}: member '{name}' would be written outside the dataset root")
            z.extractall(into)
        return
    try:
        with tarfile.open(archive) as t:
            t.extractall(into, filter="data")
    except tarfile.TarError as err:
        raise ValueError(f"{archive}: not a readable tar or zip archive ({err})") from err


def download_dataset(out: str | Path, cfg: dict[str, Any], cache_dir: str | Path) -> None:
    """Fetch every archive of `cfg['archives']` ({url, sha256}) and extract them all into `out`."""
    archives = cfg.get("archives") or []
    if not archives:
        raise ValueError("config key datasets.<ds>.download.archives: no archives listed")
    cache = Path(cache_dir)
    files = []
    for i, item in enumerate(archives):
        for key in ("url", "sha256"):
            if not item.get(key):
                raise ValueError(f"config key datasets.<ds>.download.archives[{i}].{key}: missing")
        name = Path(urlparse(item["url"]).path).name or f"archive{i}"
        files.append(fetch(item["url"], cache / name, item["sha256"].lower()))
    with atomic_path(out, is_dir=True) as tmp:
        for archive in files:
            log.info("extracting %s", archive)
            extract(archive, tmp)
