"""The genuine datasets: Debian's Fashion-MNIST and CIFAR-10 from the shared tool.

CI installs Debian's package and has ../shared/tools beside the checkout, so both run there; on a
machine without them these tests are skipped with the reason.
"""

import os
import subprocess
from pathlib import Path

import pytest

from specrobust.data import load_dataset, verify_dataset

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
GET_CIFAR10 = Path(__file__).resolve().parents[2] / "shared" / "tools" / "get-cifar10"
CACHE = Path(os.environ.get("SPECROBUST_TEST_CACHE", Path.home() / ".cache" / "specrobust-tests"))


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(),
                    reason="needs Debian's dataset-fashion-mnist package")
def test_fashion_mnist_from_debian_verifies():
    report = verify_dataset("fashion-mnist")
    assert report.directory == DEBIAN_FASHION_MNIST
    assert [c.status for c in report.files] == ["ok"] * 4
    assert (report.train, report.test) == (60000, 10000) and report.ok
    dataset = load_dataset("fashion-mnist")
    assert dataset.train.class_counts(10).tolist() == [6000] * 10


@pytest.fixture(scope="session")
def cifar10_root():
    if not GET_CIFAR10.is_file():
        pytest.skip(f"needs {GET_CIFAR10} (the shared data tool)")
    result = subprocess.run(["bash", str(GET_CIFAR10), str(CACHE)], capture_output=True,
                            text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"get-cifar10 failed: {result.stderr[-500:]}")
    return CACHE


def test_cifar10_binary_release_verifies(cifar10_root):
    report = verify_dataset("cifar10", cifar10_root)
    assert report.layout == "binary"
    assert [c.status for c in report.files] == ["ok"] * 6
    assert (report.train, report.test) == (50000, 10000) and report.ok
    dataset = load_dataset("cifar10", cifar10_root)
    assert dataset.test.class_counts(10).tolist() == [1000] * 10
