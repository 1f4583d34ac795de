import os

import numpy as np
import pytest

from fitgpt.errors import DataError
from fitgpt.shards import HEADER_BYTES, MAGIC, find_shards, open_tokens, read_header, write_shard


def test_round_trip(tmp_path):
    tokens = np.random.default_rng(0).integers(0, 65536, size=10_000)
    path = tmp_path / "x_train_000000.bin"
    write_shard(path, tokens)
    assert os.path.getsize(path) == HEADER_BYTES + 2 * tokens.size
    loaded = open_tokens(path)
    assert isinstance(loaded, np.memmap)
    np.testing.assert_array_equal(loaded, tokens)


def test_header_matches_llm_c_spec(tmp_path):
    path = tmp_path / "x_val_000000.bin"
    write_shard(path, [5, 6, 7])
    raw = path.read_bytes()
    header = np.frombuffer(raw[:HEADER_BYTES], dtype="<i4")
    assert list(header[:3]) == [MAGIC, 1, 3] and not header[3:].any()
    assert np.frombuffer(raw[HEADER_BYTES:], dtype="<u2").tolist() == [5, 6, 7]


def test_reads_file_written_by_hand_from_spec(tmp_path):
    path = tmp_path / "fineweb_train_000001.bin"
    header = np.zeros(256, dtype="<i4")
    header[0], header[1], header[2] = 20240520, 1, 4
    path.write_bytes(header.tobytes() + np.array([50256, 1, 2, 3], dtype="<u2").tobytes())
    assert read_header(path) == 4
    assert open_tokens(path).tolist() == [50256, 1, 2, 3]


def test_truncated_file_rejected_with_name(tmp_path):
    path = tmp_path / "x_train_000000.bin"
    write_shard(path, np.arange(100))
    with open(path, "r+b") as f:
        f.truncate(HEADER_BYTES + 150)
    with pytest.raises(DataError, match=rf"{path}: .*truncated"):
        open_tokens(path)


def test_wrong_magic_rejected_with_name(tmp_path):
    path = tmp_path / "x_train_000000.bin"
    write_shard(path, np.arange(10))
    data = bytearray(path.read_bytes())
    data[:4] = (1234).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=rf"{path}: bad magic number 1234"):
        open_tokens(path)


def test_wrong_version_and_short_file(tmp_path):
    path = tmp_path / "x_train_000000.bin"
    header = np.zeros(256, dtype="<i4")
    header[:3] = (MAGIC, 7, 0)
    path.write_bytes(header.tobytes())
    with pytest.raises(DataError, match=rf"{path}: unsupported shard version 7"):
        open_tokens(path)
    path.write_bytes(b"\x00" * 8)
    with pytest.raises(DataError, match=rf"{path}: .*too short"):
        open_tokens(path)


def test_out_of_range_tokens_refused(tmp_path):
    with pytest.raises(DataError, match="uint16"):
        write_shard(tmp_path / "x.bin", [70000])
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_find_shards_sorted_by_split(tmp_path):
    for name in ("d_train_000002.bin", "d_train_000001.bin", "d_val_000000.bin"):
        write_shard(tmp_path / name, [1, 2])
    assert [os.path.basename(p) for p in find_shards(tmp_path, "train")] == ["d_train_000001.bin", "d_train_000002.bin"]
    assert [os.path.basename(p) for p in find_shards(tmp_path, "val")] == ["d_val_000000.bin"]
