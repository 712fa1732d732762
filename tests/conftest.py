import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated_data_root(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's real data root by accident."""
    monkeypatch.setenv("SPECROBUST_DATA", str(tmp_path_factory.mktemp("empty-data-root")))


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)


def pytest_configure(config):
    # Two cores on the CI machines: more threads only add contention.
    torch.set_num_threads(int(os.environ.get("SPECROBUST_TEST_THREADS", "2")))
