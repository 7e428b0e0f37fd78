"""FeatureLoss on a two-layer CNN, and the VGG16-BN factory with random weights (never downloads)."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from colorkit.loss import FeatureLoss, gram_matrix, vgg16_bn_features, vgg16_feature_loss


def small_cnn(seed: int = 0) -> nn.Sequential:
    """conv-relu-conv-relu: features at 1 (full res) and 3 (half res)."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(4, 6, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3),  # never reached: the loss stops after the last id
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return net


def small_loss(**kwargs) -> FeatureLoss:
    return FeatureLoss(small_cnn(), layer_ids=[1, 3], layer_weights=[1.0, 2.0], **kwargs)


def batch(seed: int = 0, size: int = 16, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


class TestFeatureLoss:
    def test_zero_for_identical(self):
        x = batch()
        assert small_loss(gram_weight=1.0)(x, x.clone()).item() == 0.0

    def test_grows_with_perturbation(self):
        loss, x = small_loss(), batch()
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
        values = [loss((x + s * noise).clamp(0, 1), x).item() for s in (0.01, 0.05, 0.2)]
        assert 0 < values[0] < values[1] < values[2]

    def test_features_matter_beyond_pixels(self):
        x, y = batch(0), batch(1)
        pixel_only = FeatureLoss(small_cnn(), [1, 3], [0.0, 0.0])(x, y).item()
        with_features = small_loss()(x, y).item()
        assert with_features > pixel_only > 0

    def test_formula(self):
        """pixel_weight*L1 + sum w_i L1(f_i) + gram_weight * sum w_i^2 L1(gram_i), on normalised inputs."""
        net, x, y = small_cnn(), batch(0), batch(1)
        loss = FeatureLoss(net, [1, 3], [1.0, 2.0], pixel_weight=3.0, gram_weight=5.0)
        got = loss(x, y)
        from colorkit.color import imagenet_normalize

        xn, yn = imagenet_normalize(x), imagenet_normalize(y)
        fx1, fy1 = net[:2](xn), net[:2](yn)
        fx3, fy3 = net[2:4](fx1), net[2:4](fy1)
        l1 = nn.functional.l1_loss
        want = 3.0 * l1(x, y) + 1.0 * l1(fx1, fy1) + 2.0 * l1(fx3, fy3)
        grams = 1.0 * l1(gram_matrix(fx1), gram_matrix(fy1)) + 4.0 * l1(gram_matrix(fx3), gram_matrix(fy3))
        want = want + 5.0 * grams
        torch.testing.assert_close(got, want)

    def test_gradient_reaches_pred_only(self):
        loss = small_loss(gram_weight=1.0)
        pred, targ = batch(0).requires_grad_(), batch(1).requires_grad_()
        loss(pred, targ).backward()
        assert pred.grad is not None and pred.grad.abs().sum() > 0
        assert targ.grad is None
        assert all(p.grad is None and not p.requires_grad for p in loss.extractor.parameters())

    def test_extractor_stays_eval(self):
        extractor = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        loss = FeatureLoss(extractor, [2], [1.0])
        loss.train()
        assert loss.training and not loss.extractor.training
        assert not any(m.training for m in loss.extractor.modules())
        before = extractor[1].running_mean.clone()
        loss(batch(0), batch(1))
        torch.testing.assert_close(extractor[1].running_mean, before)  # BatchNorm statistics untouched

    def test_gram_term_changes_value(self):
        x, y = batch(0), batch(1)
        plain = small_loss()(x, y)
        loss = small_loss(gram_weight=10.0)
        with_gram = loss(x, y)
        assert with_gram > plain
        torch.testing.assert_close(with_gram - plain, torch.tensor(loss.last_parts["gram"]))

    def test_last_parts(self):
        loss = small_loss(gram_weight=1.0)
        total = loss(batch(0), batch(1))
        parts = loss.last_parts
        assert set(parts) == {"pixel", "feature", "gram", "total"}
        assert all(isinstance(v, float) and v > 0 for v in parts.values())
        assert parts["pixel"] + parts["feature"] + parts["gram"] == pytest.approx(parts["total"], rel=1e-5)
        assert parts["total"] == pytest.approx(total.item())
        assert loss.metrics == parts

    def test_moves_to_input_dtype(self):
        loss = small_loss()
        x, y = batch(0, dtype=torch.float64), batch(1, dtype=torch.float64)
        out = loss(x, y)
        assert out.dtype == torch.float64
        assert all(p.dtype == torch.float64 for p in loss.extractor.parameters())
        out32 = loss(x.float(), y.float())
        assert out32.dtype == torch.float32 and next(loss.extractor.parameters()).dtype == torch.float32
        torch.testing.assert_close(out.float(), out32, rtol=1e-4, atol=1e-5)

    def test_half_input_computed_in_float32(self):
        loss = small_loss()
        out = loss(batch(0).half(), batch(1))
        assert out.dtype == torch.float32 and torch.isfinite(out)

    @pytest.mark.gpu
    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    def test_moves_to_input_device(self):
        loss = small_loss()
        out = loss(batch(0).cuda(), batch(1).cuda())
        assert out.is_cuda and next(loss.extractor.parameters()).is_cuda

    def test_captured_feature_not_overwritten_in_place(self):
        """A conv output followed by ReLU(inplace=True) is captured before the ReLU (negatives kept)."""
        net = small_cnn()
        loss = FeatureLoss(net, [0], [1.0], pixel_weight=0.0, normalize=False)
        x, y = batch(0), batch(1)
        want = nn.functional.l1_loss(net[0](x), net[0](y))
        torch.testing.assert_close(loss(x, y), want)

    def test_fastai_tensor_subclass(self):
        from fastai.torch_core import TensorImage

        loss = small_loss()
        x, y = batch(0), batch(1)
        out = loss(TensorImage(x), TensorImage(y))
        assert type(out) is torch.Tensor
        torch.testing.assert_close(out, loss(x, y))

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"layer_ids": [1, 3], "layer_weights": [1.0]}, "2 layer_ids"),
            ({"layer_ids": [1, 9], "layer_weights": [1.0, 1.0]}, "out of range"),
            ({"layer_ids": [], "layer_weights": []}, "at least one"),
            ({"layer_ids": [1, 1], "layer_weights": [1.0, 1.0]}, "distinct"),
        ],
    )
    def test_bad_layers(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            FeatureLoss(small_cnn(), **kwargs)

    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match=r"\(2, 3, 16, 16\) and \(2, 3, 8, 8\)"):
            small_loss()(batch(0), batch(1, size=8))

    def test_custom_extractor_pickles_whole(self):
        loss = small_loss(gram_weight=0.5)
        x, y = batch(0), batch(1)
        want = loss(x, y)
        clone = pickle.loads(pickle.dumps(loss))
        assert clone.extractor is not None
        assert clone.last_parts == {}
        torch.testing.assert_close(clone(x, y), want)


@pytest.fixture(scope="module")
def vgg_loss() -> FeatureLoss:
    """One random-init VGG16-BN loss (gram term on) shared by the VGG tests."""
    return vgg16_feature_loss(pretrained=False, gram_weight=1.0)


class TestVGG:
    def test_layer_ids_feed_pools_3_4_5(self):
        with torch.device("meta"):
            from torchvision.models import vgg16_bn

            full = vgg16_bn(weights=None).features
        features, ids = vgg16_bn_features(pretrained=False)
        pools = [i for i, m in enumerate(full) if isinstance(m, nn.MaxPool2d)]
        assert len(pools) == 5
        for k, i in zip((3, 4, 5), ids, strict=True):
            assert isinstance(full[i], nn.ReLU) and isinstance(full[i + 1], nn.MaxPool2d)
            assert pools.index(i + 1) == k - 1
        assert len(features) == ids[-1] + 1  # truncated after the last needed layer
        assert [type(m) for m in features] == [type(m) for m in full[: ids[-1] + 1]]
        assert set(features.state_dict()) <= {k for k in full.state_dict()}

    def test_random_init_is_reproducible_and_leaves_rng_alone(self):
        torch.manual_seed(123)
        expected_next = torch.rand(3)
        torch.manual_seed(123)
        a, _ = vgg16_bn_features(pretrained=False)
        torch.testing.assert_close(torch.rand(3), expected_next)
        b, _ = vgg16_bn_features(pretrained=False)
        for (ka, pa), (kb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert ka == kb
            torch.testing.assert_close(pa, pb)
        assert a[0].weight.std() > 0

    def test_local_weights_file(self, tmp_path):
        feats, _ = vgg16_bn_features(pretrained=False)
        state = {f"features.{k}": v + 1 for k, v in feats.state_dict().items()}
        state["classifier.0.weight"] = torch.zeros(2, 2)  # a full-model file: the classifier is ignored
        path = tmp_path / "vgg.pth"
        torch.save(state, path)
        loaded, _ = vgg16_bn_features(pretrained=True, weights=path)
        torch.testing.assert_close(loaded[0].weight, feats[0].weight + 1)

    def test_wrong_weights_file(self, tmp_path):
        from colorkit._weights import WeightsUnavailableError

        path = tmp_path / "resnet.pth"
        torch.save({"conv1.weight": torch.zeros(2)}, path)
        with pytest.raises(WeightsUnavailableError, match="resnet.pth"):
            vgg16_bn_features(weights=path)

    @pytest.mark.slow
    def test_vgg_loss_32px(self, vgg_loss: FeatureLoss):
        loss = vgg_loss
        assert loss.layer_ids == [22, 32, 42]
        x, y = batch(0, size=32), batch(1, size=32)
        pred = x.clone().requires_grad_()
        assert loss(x, x.clone()).item() == 0.0
        value = loss(pred, y)
        value.backward()
        assert value.item() > 0 and pred.grad.abs().sum() > 0
        assert loss.last_parts["feature"] > 0 and loss.last_parts["gram"] > 0

    @pytest.mark.slow
    def test_pickle_is_small_and_rebuilds(self, vgg_loss: FeatureLoss):
        loss = vgg_loss
        x, y = batch(0, size=32), batch(1, size=32)
        want = loss(x, y)
        data = pickle.dumps(loss)
        assert len(data) < 100_000
        clone = pickle.loads(data)
        assert clone.extractor is None  # rebuilt lazily, on first use
        torch.testing.assert_close(clone(x, y), want)
        assert clone.extractor is not None and not clone.extractor.training
        assert len(pickle.dumps(clone)) < 100_000


# ----------------------------------------------------------------------------------------------
# ChromaL1Loss, plain and class-rebalanced


def _gray_with_green_strip(n: int = 4, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """(truth, gray prediction): truth is neutral gray except a green strip (1/8 of the pixels)."""
    from colorkit.color import lab_to_rgb

    lab = torch.zeros(n, 3, size, size)
    lab[:, 0] = 50
    lab[:, 1:, : size // 8] = torch.tensor([-30.0, 30.0]).view(1, 2, 1, 1)
    truth = lab_to_rgb(lab).clamp(0, 1)
    gray = lab_to_rgb(torch.cat([lab[:, :1], torch.zeros(n, 2, size, size)], 1)).clamp(0, 1)
    return truth, gray


def test_chroma_l1_rebalance_weighs_rare_colours_up():
    from colorkit.loss import ChromaL1Loss

    truth, gray = _gray_with_green_strip()
    plain_loss, rebalanced = ChromaL1Loss(), ChromaL1Loss(rebalance=0.5)
    assert float(plain_loss(truth, truth)) == 0 and float(rebalanced(truth, truth)) == 0
    # the error is all on the rare green pixels: rebalanced, it counts several times more
    assert float(rebalanced(gray, truth)) > 3 * float(plain_loss(gray, truth))
    # the weights keep the loss's scale: mean 1 over the pixels counted
    from colorkit.color import rgb_to_lab
    from colorkit.colorclass import ab_to_bin

    w = rebalanced.weights[ab_to_bin(rgb_to_lab(truth)[:, 1:])]
    assert w.mean().item() == pytest.approx(1.0, rel=1e-4)


def test_chroma_l1_prior_is_fixed_after_prior_batches():
    from colorkit.loss import ChromaL1Loss

    truth, gray = _gray_with_green_strip()
    loss = ChromaL1Loss(rebalance=0.5, prior_batches=2)
    loss(gray, truth)
    loss(gray, truth)
    fixed = loss.weights.clone()
    loss(gray, gray)  # an all-gray batch no longer changes the prior
    assert loss.seen == 2 and torch.equal(loss.weights, fixed)


def test_make_loss_rebalance_only_for_l1():
    from colorkit.loss import ChromaL1Loss, make_loss

    assert make_loss("l1", rebalance=0.25).rebalance == 0.25
    assert make_loss("l1").rebalance == 0
    with pytest.raises(ValueError, match="only the l1 loss"):
        make_loss("feature", pretrained=False, rebalance=0.5)
    with pytest.raises(ValueError, match="rebalance"):
        ChromaL1Loss(rebalance=2)
