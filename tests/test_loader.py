import os
import resource
import time

import numpy as np
import pytest
import torch

from fitgpt.errors import ConfigError, DataError
from fitgpt.loader import TokenLoader
from fitgpt.shards import HEADER_BYTES, MAGIC, write_shard


@pytest.fixture
def dataset(tmp_path):
    """Three train shards of different sizes, each token its global position (unique), and a val shard."""
    for i, (start, n) in enumerate(((0, 3000), (3000, 1000), (4000, 2000))):
        write_shard(tmp_path / f"d_train_{i:06d}.bin", start + np.arange(n))
    write_shard(tmp_path / "d_val_000000.bin", np.arange(500))
    return tmp_path


def batches(loader, n):
    return [tuple(t.clone() for t in loader.next_batch()) for _ in range(n)]


@pytest.mark.parametrize("order", ["random", "sequential"])
def test_targets_are_inputs_shifted(dataset, order):
    x, y = TokenLoader(dataset, "train", 4, 16, order).next_batch()
    assert x.shape == y.shape == (4, 16)
    assert (x[:, 1:] == y[:, :-1]).all()


@pytest.mark.parametrize("order", ["random", "sequential"])
def test_deterministic_for_a_seed(dataset, order):
    a = batches(TokenLoader(dataset, "train", 4, 16, order, seed=7), 5)
    b = batches(TokenLoader(dataset, "train", 4, 16, order, seed=7), 5)
    c = batches(TokenLoader(dataset, "train", 4, 16, order, seed=8), 5)
    assert all((p[0] == q[0]).all() for p, q in zip(a, b))
    assert any((p[0] != q[0]).any() for p, q in zip(a, c))


@pytest.mark.parametrize("order", ["random", "sequential"])
def test_position_save_and_restore(dataset, order):
    loader = TokenLoader(dataset, "train", 4, 16, order, seed=3)
    batches(loader, 37)  # far enough to cross shard boundaries and, sequentially, an epoch
    state = loader.state_dict()
    expected = batches(loader, 20)
    restored = TokenLoader(dataset, "train", 4, 16, order, seed=3)
    restored.load_state_dict(state)
    assert all((p[0] == q[0]).all() and (p[1] == q[1]).all() for p, q in zip(expected, batches(restored, 20)))


def test_sequential_epoch_covers_every_window_once(dataset):
    loader = TokenLoader(dataset, "train", 5, 10, "sequential", seed=1)
    rows_per_epoch = (2999 // 10) + (999 // 10) + (1999 // 10)
    starts = []
    while loader.epoch == 0:
        x, _ = loader.next_batch()
        starts += x[:, 0].tolist()
    assert len(starts) >= rows_per_epoch
    assert len(set(starts[:rows_per_epoch])) == rows_per_epoch  # no window twice in one epoch


@pytest.mark.parametrize("order", ["random", "sequential"])
@pytest.mark.parametrize("world", [2, 3])
def test_ranks_share_out_the_one_process_stream(dataset, order, world):
    """Rank r of W reads micro-batches r, r+W, ... of the stream one process reads: together, in
    each step, the same rows; no two ranks the same micro-batch."""
    single = batches(TokenLoader(dataset, "train", 4, 10, order, seed=5), 6 * world)
    ranks = [
        batches(TokenLoader(dataset, "train", 4, 10, order, seed=5, rank=r, world_size=world), 6) for r in range(world)
    ]
    for k, (x, y) in enumerate(single):
        rx, ry = ranks[k % world][k // world]
        assert torch.equal(x, rx) and torch.equal(y, ry)
    assert len({tuple(x[:, 0].tolist()) for x, _ in single}) == 6 * world  # distinct micro-batches


@pytest.mark.parametrize("order", ["random", "sequential"])
def test_a_position_saved_by_two_ranks_resumes_on_one_or_four(dataset, order):
    two = [TokenLoader(dataset, "train", 4, 10, order, seed=5, rank=r, world_size=2) for r in range(2)]
    for loader in two:
        batches(loader, 6)  # 3 steps of 4 micro-batches, 2 per rank
    states = [loader.state_dict() for loader in two]
    assert states[0] == states[1] and states[0]["position"] == 12
    expected = batches(TokenLoader(dataset, "train", 4, 10, order, seed=5), 20)[12:]
    one = TokenLoader(dataset, "train", 4, 10, order, seed=5)
    one.load_state_dict(states[0])
    assert all(torch.equal(a[0], b[0]) for a, b in zip(expected, batches(one, 8)))
    four = TokenLoader(dataset, "train", 4, 10, order, seed=5, rank=1, world_size=4)
    four.load_state_dict(states[0])
    assert torch.equal(batches(four, 1)[0][0], expected[1][0])
    three = TokenLoader(dataset, "train", 4, 10, order, seed=5, world_size=5)
    with pytest.raises(ConfigError, match="stopped after 12 micro-batches, which 5 processes cannot share"):
        three.load_state_dict(states[0])


def test_random_order_weights_shards_by_size(dataset):
    loader = TokenLoader(dataset, "train", 64, 8, "random", seed=0)
    counts = np.zeros(3)
    for _ in range(50):
        x, _ = loader.next_batch()
        counts += np.bincount(np.searchsorted([3000, 4000], x[:, 0].numpy(), side="right"), minlength=3)
    share = counts / counts.sum()  # window counts are 2992, 992, 1992
    np.testing.assert_allclose(share, np.array([2992, 992, 1992]) / 5976, atol=0.03)


def test_reads_npy_and_headerless_bins(tmp_path):
    np.save(tmp_path / "edu_train_000001.npy", np.arange(200, dtype=np.uint16))
    np.save(tmp_path / "edu_val_000000.npy", np.arange(100, dtype=np.uint16))
    x, y = TokenLoader(tmp_path, "train", 2, 8, "sequential").next_batch()
    assert x[0].tolist() == list(range(8))
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    np.arange(300, dtype=np.uint16).tofile(legacy / "train.bin")
    x, _ = TokenLoader(legacy, "train", 2, 8, "sequential").next_batch()
    assert x[1].tolist() == list(range(8, 16))


def test_missing_split_and_short_shards_named(tmp_path):
    with pytest.raises(DataError, match=rf"{tmp_path}: no train shards"):
        TokenLoader(tmp_path, "train", 2, 8)
    write_shard(tmp_path / "d_train_000000.bin", np.arange(8))
    with pytest.raises(DataError, match=r"d_train_000000.bin: every train shard is shorter than block_size\+1"):
        TokenLoader(tmp_path, "train", 2, 8)


def test_token_ids_beyond_vocab_named(dataset):
    loader = TokenLoader(dataset, "train", 2, 8)
    loader.check_vocab(6000)
    with pytest.raises(DataError, match=r"d_train_000002.bin: token id 5\d{3} at position [\d,]+ is outside the"):
        loader.check_vocab(5000)


def test_147_sparse_shards_open_fast_with_small_rss(tmp_path):
    tokens = 100_000_000
    header = np.zeros(256, dtype="<i4")
    header[:3] = (MAGIC, 1, tokens)
    for i in range(148):  # shard 0 is val, 147 train shards: 14.7B tokens, 29 GB apparent, ~0 on disk
        path = tmp_path / (f"fw_val_{i:06d}.bin" if i == 0 else f"fw_train_{i:06d}.bin")
        with open(path, "wb") as f:
            f.write(header.tobytes())
            f.truncate(HEADER_BYTES + 2 * tokens)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    loader = TokenLoader(tmp_path, "train", 8, 1024, "random")
    elapsed = time.perf_counter() - t0
    x, _ = loader.next_batch()
    assert loader.num_tokens == 147 * tokens and x.shape == (8, 1024)
    assert elapsed < 1.0
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mb < 100
    assert sum(os.stat(p).st_blocks for p in loader.paths) * 512 < 50 * 2**20
