"""pytest configuration of the tokenmix binding tests: the module comes from PYTHONPATH (ctest sets
it to <build>/python); torch runs on one thread so that timings of the suite stay predictable."""

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
