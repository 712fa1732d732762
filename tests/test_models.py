import pytest
import torch

from specrobust.data import get_dataset_info
from specrobust.errors import SpecRobustError
from specrobust.models import MODELS, count_parameters, create_model

# Standard architectures' parameter counts with 10 classes and 3 input channels.
EXPECTED_PARAMETERS = {
    "resnet18": 11_173_962,
    "wrn34_10": 46_160_474,
    "wrn28_10": 36_479_194,
}


@pytest.mark.parametrize("name", list(EXPECTED_PARAMETERS))
def test_parameter_counts_match_the_standard_architectures(name):
    assert count_parameters(create_model(name, 10)) == EXPECTED_PARAMETERS[name]


def test_preact_resnet18_size():
    assert count_parameters(create_model("preact_resnet18", 10)) == pytest.approx(11.17e6, rel=1e-3)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_forwards_its_datasets_shape(name):
    datasets = ["cifar10", "fashion-mnist", "tinyimagenet"] if name == "cnn_small" else ["cifar10"]
    for dataset in datasets:
        info = get_dataset_info(dataset)
        model = create_model(name, info.num_classes, in_channels=info.image_shape[0]).eval()
        with torch.no_grad():
            logits = model(torch.rand(2, *info.image_shape))
        assert logits.shape == (2, info.num_classes) and torch.isfinite(logits).all()


def test_normalization_lives_inside_the_model():
    plain = create_model("cnn_small", 10, in_channels=1).eval()
    normalized = create_model("cnn_small", 10, in_channels=1, mean=[0.5], std=[0.25]).eval()
    normalized.net.load_state_dict(plain.net.state_dict())
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(normalized(x), plain((x - 0.5) / 0.25), atol=1e-6)
        assert torch.equal(plain(x), plain.net(x))  # identity by default
    assert set(normalized.state_dict()) >= {"normalize.mean", "normalize.std"}


def test_model_errors():
    with pytest.raises(SpecRobustError, match="unknown model 'vgg'"):
        create_model("vgg", 10)
    with pytest.raises(SpecRobustError, match="3 values"):
        create_model("cnn_small", 10, mean=[0.5], std=[0.2])
    with pytest.raises(SpecRobustError, match="std"):
        create_model("cnn_small", 10, in_channels=1, mean=[0.5], std=[0.0])
