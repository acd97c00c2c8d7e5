"""The data registry: resolution order, checksums, downloads and the errors that say what to do."""

import hashlib
from pathlib import Path

import pytest

from qamar import data
from qamar.errors import DataIntegrityError, DataNotFoundError


def test_packaged_files_resolve_from_their_pypi_packages_and_match_their_hashes():
    for key in ("grgm1200a", "de440s", "moon_pa_de440", "leapseconds"):
        found = data.locate(key)
        assert found is not None and found.origin == "package", key
        assert data.verify(key) is True, key


def test_shared_files_resolve_from_qamar_data_dir(monkeypatch, tmp_path):
    assert data.locate("lp165p").origin == "QAMAR_DATA_DIR"
    assert data.verify("lp165p") is True
    monkeypatch.setenv("QAMAR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("QAMAR_CACHE_DIR", str(tmp_path / "cache"))
    assert data.locate("lp165p") is None


def test_missing_file_error_names_the_ways_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("QAMAR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("QAMAR_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataNotFoundError, match=r"QAMAR_DATA_DIR.*gravity/LP165P\.cof.*LP165P\.cof"):
        data.path("lp165p", download=False)
    with pytest.raises(DataNotFoundError, match="no data file is registered as 'nope'"):
        data.path("nope")


def _register(monkeypatch, tmp_path: Path, payload: bytes, sha256: str) -> data.DataFile:
    source = tmp_path / "upstream.bin"
    source.write_bytes(payload)
    entry = data.DataFile(key="probe", name="probe.bin", sha256=sha256, description="probe file",
                          subdir="kernels", url=source.as_uri())
    monkeypatch.setitem(data.REGISTRY, "probe", entry)
    monkeypatch.setenv("QAMAR_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("QAMAR_CACHE_DIR", str(tmp_path / "cache"))
    return entry


def test_download_fills_the_cache_after_checking_the_hash(monkeypatch, tmp_path):
    payload = b"lunar bytes" * 1000
    _register(monkeypatch, tmp_path, payload, hashlib.sha256(payload).hexdigest())
    got = data.path("probe")
    assert got == tmp_path / "cache" / "kernels" / "probe.bin"
    assert got.read_bytes() == payload
    assert data.locate("probe").origin == "cache"


def test_download_with_a_wrong_hash_leaves_nothing_in_the_cache(monkeypatch, tmp_path):
    _register(monkeypatch, tmp_path, b"tampered", "0" * 64)
    with pytest.raises(DataIntegrityError, match="SHA-256"):
        data.path("probe")
    assert not any((tmp_path / "cache" / "kernels").iterdir())
