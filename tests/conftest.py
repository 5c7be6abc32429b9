import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def synth_file(tmp_path_factory) -> Path:
    import json

    from sqlfoundry.data.synth import generate_rows

    path = tmp_path_factory.mktemp("data") / "synth.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in generate_rows(400, seed=7)))
    return path
