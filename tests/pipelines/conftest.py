"""Session-wide tiny model files for the pipeline and generate tests."""

from __future__ import annotations

import pytest
from pipeline_files import TinyModels, write_tiny_models


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> TinyModels:
    return write_tiny_models(tmp_path_factory.mktemp("tiny-models"))
