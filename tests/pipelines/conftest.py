"""Session-wide tiny model files (the demo model's layout, with the tiny random Gemma)."""

from __future__ import annotations

import pytest

from ltx2cli.pipelines.demo import DemoFiles, write_demo_files


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> DemoFiles:
    return write_demo_files(tmp_path_factory.mktemp("tiny-models"), packaged_gemma=False)
