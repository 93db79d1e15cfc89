from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest


def clustered(n: int, dim: int, seed: int = 0, clusters: int = 50) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1, (clusters, dim)).astype(np.float32)
    which = rng.integers(0, clusters, n)
    data = centers[which] + rng.normal(0, 0.25, (n, dim)).astype(np.float32)
    return data.astype(np.float32)


@pytest.fixture(scope="session")
def _points() -> npt.NDArray[np.float32]:
    return clustered(5040, 32)


@pytest.fixture(scope="session")
def data(_points: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return _points[:5000]


@pytest.fixture(scope="session")
def queries(_points: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Held-out points from the same clusters as the data."""
    return _points[5000:]
