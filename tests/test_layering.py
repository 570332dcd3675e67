"""The import rules of docs/architecture.md hold, and the lint fails a sideways import.

The rules live in ruff configs (pyproject.toml plus one ruff.toml per package). These tests
copy those configs into a scratch tree, write one module per case and run the real ruff on
it, so a rule that silently stopped applying (a per-file ignore too wide, a config no
longer extended) fails here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ("pyproject.toml", "edgecls/ruff.toml", "convert/ruff.toml", "device/ruff.toml")

#: (file in the scratch tree, its source, the banned module ruff must name, or None if allowed)
CASES = [
    ("convert/sideways.py", "from edgecls.device.frames import FRAME_NAME\n", "edgecls.device"),
    ("convert/late.py", "def f():\n    import edgecls.device.loop\n", "edgecls.device"),
    ("device/sideways.py", "from edgecls.convert.runner import TFLiteModel\n", "edgecls.convert"),
    ("device/tf_inside.py", "def f():\n    import tensorflow\n", "tensorflow"),
    ("device/serve/deep.py", "from edgecls.convert import parity\n", "edgecls.convert"),
    ("device/own_interpreter.py", "from ai_edge_litert import interpreter\n", "ai_edge_litert.interpreter"),
    ("convert/own_interpreter.py", "def f():\n    from tflite_runtime.interpreter import Interpreter\n", "tflite_runtime.interpreter"),
    ("edgecls/core.py", "from edgecls.device.frames import FRAME_NAME\n", "edgecls.device"),
    ("edgecls/core2.py", "from edgecls.convert.export import MODES\n", "edgecls.convert"),
    ("edgecls/core3.py", "def f():\n    import keras\n", "keras"),
    # allowed: convert and host training import TensorFlow inside functions; both use the core
    ("convert/ok.py", "from edgecls.tensorio import make_input_encoder\n\n\ndef f():\n    import tensorflow\n", None),
    ("edgecls/train.py", "def f():\n    import tensorflow\n", None),
    ("device/ok.py", "from edgecls.frameset import FRAME_NAME\n", None),
    ("convert/schema_ok.py", "def f():\n    from ai_edge_litert import schema_py_generated\n", None),
]


def _ruff(tree: Path, *paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "TID", "--output-format", "concise", *paths],
        cwd=tree, capture_output=True, text=True, check=False,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("ruff") is None and subprocess.run([sys.executable, "-m", "ruff", "--version"],
                                                       capture_output=True, check=False).returncode:
        pytest.skip("ruff is not installed (pip install 'edgecls[dev]')")
    root = tmp_path_factory.mktemp("layering")
    for name in CONFIGS:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, root / name)
    for name, source, _ in CASES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("from __future__ import annotations\n\n" + source)
    return root


@pytest.mark.parametrize(("name", "source", "banned"), [c for c in CASES if c[2]], ids=[c[0] for c in CASES if c[2]])
def test_sideways_import_fails_lint(tree: Path, name: str, source: str, banned: str) -> None:
    result = _ruff(tree, name)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"TID251 `{banned}` is banned" in result.stdout, result.stdout


@pytest.mark.parametrize("name", [c[0] for c in CASES if not c[2]])
def test_allowed_import_passes_lint(tree: Path, name: str) -> None:
    result = _ruff(tree, name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_tree_itself_keeps_the_rules() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "TID",
                             "edgecls", "convert", "device"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_device_runtime_loads_without_tensorflow_or_convert() -> None:
    code = ("import sys; import edgecls.device.cli, edgecls.device.loop, edgecls.device.field; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras') "
            "or m.startswith('edgecls.convert')); print(bad); raise SystemExit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
