"""Edge TPU readiness: the per-op check, the compiler's summary, and invoking the compiler.

edgetpu_compiler cannot be installed here (Coral's apt repository is unreachable), so the
"absent" path is tested for its message, the log parser on a summary laid out as the
compiler prints it with ``-s``, and the invocation with a stand-in script on PATH that
behaves like the compiler (writes NAME_edgetpu.tflite and NAME_edgetpu.log).
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from edgecls.convert.edgetpu import (
    INSTALL_HINT,
    check_readiness,
    compile_edgetpu,
    parse_compiler_log,
)
from edgecls.errors import BackendError

#: The compiler's ``-s`` summary for a graph with one op left on the CPU.
SAMPLE_LOG = """\
Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 231 ms.

Input model: model_int8.tflite
Input size: 796.03KiB
Output model: model_int8_edgetpu.tflite
Output size: 866.12KiB
On-chip memory used for caching model parameters: 834.75KiB
On-chip memory remaining for caching model parameters: 6.99MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 10
Operation log: model_int8_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 9
Number of operations that will run on CPU: 1

Operator                       Count      Status

LOGISTIC                       1          Operation is otherwise supported, but not mapped due to some unspecified limitation
FULLY_CONNECTED                2          Mapped to Edge TPU
MAX_POOL_2D                    2          Mapped to Edge TPU
RESHAPE                        1          Mapped to Edge TPU
CONV_2D                        2          Mapped to Edge TPU
QUANTIZE                       2          Mapped to Edge TPU
"""


def test_int8_artifact_is_ready(int8_model: Path) -> None:
    readiness = check_readiness(int8_model.read_bytes())
    assert readiness.ready and readiness.mapped == len(readiness.ops) == 13  # 10 + [1 - p, p]
    assert readiness.verdict().startswith("ready: all 13 ops")


def test_float_artifact_is_not_ready(float32_model: Path) -> None:
    readiness = check_readiness(float32_model.read_bytes())
    assert not readiness.ready
    assert readiness.mapped == 0
    assert "float32, not 8-bit" in readiness.ops[0].problems[0]
    assert "maps only the 0 ops before it" in readiness.verdict()


def test_parse_compiler_log() -> None:
    summary = parse_compiler_log(SAMPLE_LOG)
    assert (summary.total_ops, summary.tpu_ops, summary.cpu_ops, summary.subgraphs) == (10, 9, 1, 1)
    assert ("LOGISTIC", 1, "Operation is otherwise supported, but not mapped due to some unspecified limitation") in summary.operators
    assert sum(n for _, n, _ in summary.operators) == 10


def test_absent_compiler_says_how_to_get_it(int8_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    with pytest.raises(BackendError) as err:
        compile_edgetpu(int8_model, tmp_path / "m_edgetpu.tflite")
    assert str(err.value) == INSTALL_HINT
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    with pytest.raises(BackendError, match="runs only on x86-64 Linux"):
        compile_edgetpu(int8_model, tmp_path / "m_edgetpu.tflite")
    assert not (tmp_path / "m_edgetpu.tflite").exists()


def test_compiler_invocation_with_stand_in(int8_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in script checks it got an argument list (-s -o DIR MODEL) and answers like the compiler."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (tmp_path / "log.txt").write_text(SAMPLE_LOG)
    fake = bindir / "edgetpu_compiler"
    fake.write_text(
        "#!/bin/sh\n"
        '[ "$1" = "-s" ] && [ "$2" = "-o" ] || exit 9\n'
        'name=$(basename "$4" .tflite)\n'
        'cp "$4" "$3/${name}_edgetpu.tflite"\n'
        f'cat "{tmp_path / "log.txt"}"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    out = tmp_path / "model_int8_edgetpu.tflite"
    path, summary, _ = compile_edgetpu(int8_model, out)
    assert path == out and out.read_bytes() == int8_model.read_bytes()  # the stand-in copies; zip kept
    assert (summary.tpu_ops, summary.cpu_ops) == (9, 1)


def test_readiness_for_all_modes(tflite_models: Callable[[str], Path]) -> None:
    """Only the full-integer artifact is Edge TPU material."""
    verdicts = {mode: check_readiness(tflite_models(mode).read_bytes()).ready
                for mode in ("int8", "float16", "dynamic", "float32")}
    assert verdicts == {"int8": True, "float16": False, "dynamic": False, "float32": False}


def test_compiled_model_keeps_labels_and_spec(int8_model: Path, tmp_path: Path) -> None:
    """The real compiler rewrites the flatbuffer; the associated files are put back if lost."""
    from edgecls.artifact import read_embedded
    from edgecls.convert.edgetpu import keep_associated_files

    source = int8_model.read_bytes()
    bare = source[: source.index(b"PK\x03\x04")]  # the flatbuffer without its zip
    out = tmp_path / "compiled.tflite"
    out.write_bytes(keep_associated_files(source, bare))
    spec, labels = read_embedded(out)
    assert spec is not None and labels == spec.labels
    assert keep_associated_files(source, source) == source
