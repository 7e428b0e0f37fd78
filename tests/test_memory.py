"""In-memory training data: same selection, types and shapes as colorize_dls, crops, decode-once cache."""

import torch
from fastai.torch_core import TensorImage

from colorkit import colorize_dls
from colorkit.color import to_gray
from colorkit.data import TensorGrayInput
from colorkit.memory import MemoryPhotos, decode_photos, memory_dls, store_side


def test_memory_dls_batches(photo_dir):
    dls = colorize_dls(photo_dir, size=16, bs=4, in_memory=True, seed=1)
    ref = colorize_dls(photo_dir, size=16, bs=4, seed=1)
    assert dls.colorize_info["n_train"] == ref.colorize_info["n_train"] == 11
    assert dls.colorize_info["in_memory"] and dls.colorize_info["store_side"] == store_side(16)
    x, y = dls.one_batch()
    assert isinstance(x, TensorGrayInput) and isinstance(y, TensorImage)
    assert x.shape == y.shape == (4, 3, 16, 16) and 0 <= float(y.min()) and float(y.max()) <= 1
    torch.testing.assert_close(x.as_subclass(torch.Tensor), to_gray(y.as_subclass(torch.Tensor), channels=3))
    xv, yv = dls.valid.one_batch()
    assert yv.shape[-1] == 16


def test_decode_once_and_never_upscale(photo_dir):
    files = sorted(photo_dir.glob("*.jpg"))
    a = decode_photos(files, 16)
    assert decode_photos(files, 16) is a  # cached
    assert all(min(t.shape[1:]) == 16 and t.dtype == torch.uint8 for t in a)
    big = decode_photos(files, 400)  # larger than the photos: kept at their own size
    assert all(min(t.shape[1:]) < 400 for t in big)


def test_random_crops_differ_valid_is_fixed():
    img = (torch.rand(3, 40, 60) * 255).to(torch.uint8)
    train, valid = MemoryPhotos([img], 16, train=True), MemoryPhotos([img], 16, train=False)
    torch.manual_seed(0)
    assert not torch.equal(train[0][1], train[0][1])
    assert torch.equal(valid[0][1], valid[0][1])


def test_memory_dls_direct(photo_dir):
    dls = memory_dls(photo_dir, size=16, bs=2, valid_pct=0.25, max_items=8)
    assert dls.colorize_info["n_train"] + dls.colorize_info["n_valid"] == 8
