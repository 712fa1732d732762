import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated_data_root(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's real data root by accident."""
    monkeypatch.setenv("SPECROBUST_DATA", str(tmp_path_factory.mktemp("empty-data-root")))


@pytest.fixture(scope="session")
def natural_low():
    """cnn_small trained naturally on synthetic data with low-frequency classes, and the first
    200 test images as floats: (model, x, y). Trained once per session (a few seconds)."""
    from trained_models import train_natural

    model, test = train_natural("low")
    return model, test.as_float()[:200], test.labels[:200]


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)


def pytest_configure(config):
    # Two cores on the CI machines: more threads only add contention.
    torch.set_num_threads(int(os.environ.get("SPECROBUST_TEST_THREADS", "2")))
