import pytest
import torch

from jointlab.models import build_model, parse_arch, wrn


def test_wrn_28_10_has_the_papers_size():
    model = wrn()  # WRN-28-10, CIFAR-10
    n = sum(p.numel() for p in model.parameters())
    assert 36.4e6 < n < 36.6e6  # 36.5 M parameters (Zagoruyko & Komodakis, Table 1)
    assert len(model.blocks) == 12  # (28 - 4) / 6 = 4 blocks in each of 3 groups


@pytest.mark.parametrize("arch,channels,side,classes", [("wrn-16-2", 1, 28, 10), ("wrn-10-1", 3, 32, 100)])
def test_forward_shapes(arch, channels, side, classes):
    model = build_model(arch, num_classes=classes, in_channels=channels)
    assert model(torch.zeros(2, channels, side, side)).shape == (2, classes)


def test_bad_architectures_are_rejected():
    with pytest.raises(ValueError, match="depth must be 6n \\+ 4"):
        wrn(depth=20)
    with pytest.raises(ValueError, match="arch must look like 'wrn-DEPTH-WIDEN'"):
        parse_arch("resnet18")
    assert parse_arch("WRN-28-10") == (28, 10)
