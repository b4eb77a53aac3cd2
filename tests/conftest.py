import warnings
from pathlib import Path

import numpy as np
import pytest

warnings.filterwarnings("ignore", category=DeprecationWarning, module="persim")

#: Shared fixtures live beside the project root (``../shared``), also in CI.
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
