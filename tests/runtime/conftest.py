"""Shared fixtures of the runtime tests: the committed digits demo model and its data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


@pytest.fixture(scope="session")
def digits_dir() -> Path:
    return DIGITS


@pytest.fixture(scope="session")
def digits_x() -> np.ndarray:
    return np.load(DIGITS / "test_x.npy")


@pytest.fixture(scope="session")
def digits_y() -> np.ndarray:
    return np.load(DIGITS / "test_y.npy")
