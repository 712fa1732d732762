import pytest
import torch

from specrobust.data import DATASETS
from specrobust.errors import SpecRobustError
from specrobust.models import MODELS, count_parameters, create_model

# Standard architectures' parameter counts with 10 classes and 3 input channels (ResNet-18's
# with the published layouts below).
EXPECTED_PARAMETERS = {
    "wrn34_10": 46_160_474,
    "wrn28_10": 36_479_194,
}


@pytest.mark.parametrize("name", list(EXPECTED_PARAMETERS))
def test_parameter_counts_match_the_standard_architectures(name):
    assert count_parameters(create_model(name, 10)) == EXPECTED_PARAMETERS[name]


def test_preact_resnet18_size():
    assert count_parameters(create_model("preact_resnet18", 10)) == pytest.approx(11.17e6, rel=1e-3)


# The architectures of published checkpoints: parameter count (10 classes) and a digest of
# the sorted (key, shape) pairs of the state dict, both measured on robustbench 1.1.1's own
# definitions (its wide_resnet.WideResNet, dm_wide_resnet.DMWideResNet / DMPreActResNet with
# Swish, resnet.ResNet18 / ResNet50), so a checkpoint saved from those loads key for key.
ROBUSTBENCH_LAYOUTS = {
    "rb_wrn28_10": (36_479_194, "5beb39eb3aae6c2c"),
    "rb_wrn34_10": (46_160_474, "1e1a25aff7551a71"),
    "rb_wrn34_20": (184_531_674, "d5bc98d056a9cb36"),
    "rb_wrn70_16": (266_796_506, "f9b1e403dae9f51d"),
    "dm_wrn28_10": (36_479_194, "3031a934b7011cec"),
    "dm_wrn34_10": (46_160_474, "726e3dfc5146d202"),
    "dm_wrn34_20": (184_531_674, "b477c7c16755a739"),
    "dm_wrn70_16": (266_796_506, "c855ed33136d0d20"),
    "dm_preact_resnet18": (12_548_426, "5ca18d654e521b19"),
    "resnet18": (11_173_962, "ddaa87c4c0a32b89"),
    "resnet50": (23_520_842, "d3238b0fe384175f"),
}
LARGE = 30_000_000  # built on the meta device only: no memory, no forward pass on a CPU


def _layout_digest(net: torch.nn.Module) -> str:
    import hashlib

    items = sorted((k, tuple(v.shape)) for k, v in net.state_dict().items())
    return hashlib.sha256(repr(items).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", list(ROBUSTBENCH_LAYOUTS))
def test_published_layouts_match_robustbench_key_for_key(name):
    with torch.device("meta"):
        net = MODELS[name](10, 3)
    assert (count_parameters(net), _layout_digest(net)) == ROBUSTBENCH_LAYOUTS[name]


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_forwards_its_datasets_shape(name):
    datasets = ["cifar10", "fashion-mnist", "tinyimagenet"] if name == "cnn_small" else ["cifar10"]
    for dataset in datasets:
        info = DATASETS[dataset]
        with torch.device("meta"):
            large = count_parameters(MODELS[name](info.num_classes, info.image_shape[0])) > LARGE
        if large:  # shapes only
            with torch.device("meta"):
                net = MODELS[name](info.num_classes, info.image_shape[0]).eval()
                logits = net(torch.rand(2, *info.image_shape))
            assert logits.shape == (2, info.num_classes)
            continue
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


# torchvision's published parameter counts (the `num_params` of its ImageNet weights' metadata,
# torchvision 0.29.1 models/resnet.py) and keys every torchvision checkpoint of these holds.
TORCHVISION_LAYOUTS = {"imagenet_resnet50": (25_557_032, 256),
                       "imagenet_wrn50_2": (68_883_240, 512)}


@pytest.mark.parametrize("name", list(TORCHVISION_LAYOUTS))
def test_imagenet_architectures_have_torchvisions_layout(name):
    count, inner = TORCHVISION_LAYOUTS[name]
    with torch.device("meta"):
        net = MODELS[name](1000, 3)
    state = net.state_dict()
    assert count_parameters(net) == count and len(state) == 320
    assert tuple(state["conv1.weight"].shape) == (64, 3, 7, 7)
    assert tuple(state["layer1.0.conv2.weight"].shape) == (inner // 4, inner // 4, 3, 3)
    assert tuple(state["layer4.2.conv3.weight"].shape) == (2048, inner * 2, 1, 1)
    assert tuple(state["layer2.0.downsample.0.weight"].shape) == (512, 256, 1, 1)
    assert {"layer3.5.bn3.running_var", "layer4.0.downsample.1.num_batches_tracked",
            "fc.weight", "fc.bias"} <= set(state)
    assert not any(k.startswith(("net.", "model.", "module.")) for k in state)


def test_imagenet_architectures_carry_imagenets_normalisation():
    model = create_model("imagenet_resnet50", 1000)
    assert model.spec.mean == (0.485, 0.456, 0.406) and model.spec.std == (0.229, 0.224, 0.225)
