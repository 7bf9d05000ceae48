"""The download path: checksums, resume of partial files, extraction, refusal of bad archives."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from tests.http_server import RangeHandler, serve
from weak3d.download import download_dataset


def make_archive(path: Path, files: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def archive_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "served"
    folder.mkdir()
    return folder


def test_download_verifies_and_extracts_all_archives(archive_dir: Path, tmp_path: Path) -> None:
    sha_a = make_archive(archive_dir / "a.tgz", {"v1.0-mini/scene.json": b"[]", "samples/x.bin": b"1" * 100})
    sha_b = make_archive(archive_dir / "b.tgz", {"lidarseg/v1.0-mini/y.bin": b"\x02" * 10})
    out = tmp_path / "raw"
    with serve(archive_dir) as url:
        cfg = {
            "archives": [{"url": f"{url}/a.tgz", "sha256": sha_a}, {"url": f"{url}/b.tgz", "sha256": sha_b}]
        }
        download_dataset(out, cfg, cache_dir=tmp_path / "cache")
    assert (out / "v1.0-mini" / "scene.json").read_bytes() == b"[]"
    assert (out / "samples" / "x.bin").read_bytes() == b"1" * 100
    assert (out / "lidarseg" / "v1.0-mini" / "y.bin").read_bytes() == b"\x02" * 10


def test_partial_download_is_resumed_with_a_range_request(archive_dir: Path, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4000
    sha = make_archive(archive_dir / "big.tgz", {"data.bin": payload})
    whole = (archive_dir / "big.tgz").read_bytes()
    cache = tmp_path / "cache"
    cache.mkdir()
    half = len(whole) // 2
    (cache / "big.tgz.part").write_bytes(whole[:half])
    with serve(archive_dir) as url:
        download_dataset(tmp_path / "raw", {"archives": [{"url": f"{url}/big.tgz", "sha256": sha}]}, cache)
    assert RangeHandler.requests_seen == [f"bytes={half}-"]
    assert (cache / "big.tgz").read_bytes() == whole
    assert (tmp_path / "raw" / "data.bin").read_bytes() == payload


def test_checksum_mismatch_names_the_url_and_leaves_no_output(archive_dir: Path, tmp_path: Path) -> None:
    make_archive(archive_dir / "a.tgz", {"f": b"x"})
    out = tmp_path / "raw"
    with serve(archive_dir) as url, pytest.raises(RuntimeError, match=r"a\.tgz: SHA-256 mismatch"):
        download_dataset(out, {"archives": [{"url": f"{url}/a.tgz", "sha256": "0" * 64}]}, tmp_path / "c")
    assert not out.exists()
    assert not (tmp_path / "c" / "a.tgz.part").exists()


def test_missing_url_and_unreachable_server_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"archives\[0\]\.sha256"):
        download_dataset(tmp_path / "raw", {"archives": [{"url": "http://127.0.0.1:9/a.tgz"}]}, tmp_path)
    with pytest.raises(RuntimeError, match="127.0.0.1:9/a.tgz"):
        download_dataset(
            tmp_path / "raw",
            {"archives": [{"url": "http://127.0.0.1:9/a.tgz", "sha256": "0" * 64}]},
            tmp_path,
        )
    assert not (tmp_path / "raw").exists()


def test_archive_escaping_the_root_is_refused(archive_dir: Path, tmp_path: Path) -> None:
    sha = make_archive(archive_dir / "evil.tgz", {"../outside.txt": b"boom"})
    with serve(archive_dir) as url, pytest.raises(Exception, match="outside"):
        download_dataset(
            tmp_path / "raw", {"archives": [{"url": f"{url}/evil.tgz", "sha256": sha}]}, tmp_path / "c"
        )
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "raw").exists()
