"""Edge TPU readiness: check an int8 graph against the Edge TPU's rules, then compile if we can.

The rules (Coral, "TensorFlow models on the Edge TPU"): 8-bit tensors, static shapes,
tensors of at most 3 dimensions above a batch of 1, and ops from the supported list. The
compiler maps ops to the TPU up to the first one it cannot map; the rest run on the CPU,
so one bad op early in the graph costs almost everything. ``edgetpu_compiler`` exists only
for x86-64 Linux; when it is on PATH we run it (argument list, never a shell string) and
read how many ops it mapped from its own summary.
"""

from __future__ import annotations

import io
import platform
import re
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgecls.errors import BackendError, ModelError
from edgecls.fsutil import atomic_write_bytes

from .graph import GraphOp, GraphTensor, read_graph
from .metadata import append_files

#: Ops the Edge TPU compiler can map (Coral's supported-operations table).
EDGETPU_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS",
    "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE",
    "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQUEEZE",
    "STRIDED_SLICE", "SUB", "SUM", "SQUARED_DIFFERENCE", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
})
#: int32 is allowed only for constants (biases, reshape shapes).
_EIGHT_BIT = ("int8", "uint8")
COMPILER = "edgetpu_compiler"
COMPILER_TIMEOUT_S = 300
INSTALL_HINT = (
    "edgetpu_compiler is not on PATH, so the model was not compiled for the Edge TPU: it runs only on "
    "x86-64 Linux; add Coral's apt repository (https://coral.ai/docs/edgetpu/compiler/) and "
    "'sudo apt-get install edgetpu-compiler', or compile model_int8.tflite on such a machine"
)


@dataclass(frozen=True)
class OpCheck:
    index: int
    op: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Readiness:
    """Per-op verdicts; ``mapped`` counts the ops before the first problem (what the TPU gets)."""

    ops: tuple[OpCheck, ...]

    @property
    def ready(self) -> bool:
        return all(op.ok for op in self.ops)

    @property
    def mapped(self) -> int:
        for op in self.ops:
            if not op.ok:
                return op.index
        return len(self.ops)

    def verdict(self) -> str:
        if self.ready:
            return f"ready: all {len(self.ops)} ops meet the Edge TPU's requirements"
        first = next(op for op in self.ops if not op.ok)
        return (
            f"not ready: op {first.index} ({first.op}) {first.problems[0]}; the compiler maps only the "
            f"{self.mapped} ops before it and runs the other {len(self.ops) - self.mapped} on the CPU"
        )


def _tensor_problems(t: GraphTensor) -> list[str]:
    out = []
    if t.dtype not in _EIGHT_BIT and not (t.dtype == "int32" and t.is_constant):
        out.append(f"tensor {t.name!r} is {t.dtype}, not 8-bit")
    if any(d < 0 for d in t.shape_signature):
        out.append(f"tensor {t.name!r} has a dynamic shape {list(t.shape_signature)}")
    # weights (e.g. a conv filter, out x h x w x in) are not activations: the rule is for these
    if not t.is_constant and (len(t.shape) > 4 or (len(t.shape) == 4 and t.shape[0] != 1)):
        out.append(f"tensor {t.name!r} has shape {list(t.shape)}: more than 3 dimensions above batch 1")
    return out


def check_op(op: GraphOp) -> OpCheck:
    problems = [] if op.name in EDGETPU_OPS else ["is not an Edge TPU op"]
    for t in op.inputs + op.outputs:
        problems.extend(_tensor_problems(t))
    return OpCheck(op.index, op.name, tuple(dict.fromkeys(problems)))


def check_readiness(model_bytes: bytes, source: str = "model") -> Readiness:
    return Readiness(tuple(check_op(op) for op in read_graph(model_bytes, source)))


@dataclass(frozen=True)
class CompileSummary:
    """What the compiler's summary says; ``operators`` holds (op, count, status) rows."""

    total_ops: int | None
    tpu_ops: int | None
    cpu_ops: int | None
    subgraphs: int | None
    operators: tuple[tuple[str, int, str], ...]


def _int(pattern: str, text: str) -> int | None:
    m = re.search(pattern, text, re.MULTILINE)
    return int(m.group(1)) if m else None


def parse_compiler_log(text: str) -> CompileSummary:
    """Read edgetpu_compiler's summary (``-s``): op counts and the per-operator table."""
    total = _int(r"^Total number of operations:\s*(\d+)", text)
    tpu = _int(r"^Number of operations that will run on Edge TPU:\s*(\d+)", text)
    cpu = _int(r"^Number of operations that will run on CPU:\s*(\d+)", text)
    subgraphs = _int(r"^Number of Edge TPU subgraphs:\s*(\d+)", text)
    rows = tuple((m.group(1), int(m.group(2)), m.group(3).strip())
                 for m in re.finditer(r"^([A-Z][A-Z0-9_]+)\s+(\d+)\s+(\S.*)$", text, re.MULTILINE))
    if tpu is None and rows:
        tpu = sum(n for _, n, status in rows if status.startswith("Mapped to Edge TPU"))
    if cpu is None and total is not None and tpu is not None:
        cpu = total - tpu
    return CompileSummary(total, tpu, cpu, subgraphs, rows)


def compile_edgetpu(model: Path, out: Path, *, compiler: str | None = None) -> tuple[Path, CompileSummary, str]:
    """Run edgetpu_compiler on ``model``; write ``out`` atomically; return it, the summary and the log."""
    exe = compiler or shutil.which(COMPILER)
    if exe is None:
        machine = platform.machine().lower()
        raise BackendError(INSTALL_HINT if machine in ("x86_64", "amd64") else
                           f"edgetpu_compiler runs only on x86-64 Linux (this is {machine}): compile "
                           "model_int8.tflite on such a machine, then copy model_int8_edgetpu.tflite here")
    with tempfile.TemporaryDirectory(prefix="edgecls-edgetpu-") as tmp:
        try:
            proc = subprocess.run([exe, "-s", "-o", tmp, str(model)], capture_output=True, text=True,
                                  timeout=COMPILER_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise BackendError(f"could not run {exe} ({err}): check the Edge TPU compiler installation") from err
        log = proc.stdout + proc.stderr
        produced = Path(tmp) / f"{Path(model).stem}_edgetpu.tflite"
        if proc.returncode != 0 or not produced.exists():
            last = (log.strip().splitlines() or ["no output"])[-1]
            raise ModelError(f"edgetpu_compiler failed on {model} (exit {proc.returncode}: {last}); see the op table above")
        log_file = Path(tmp) / f"{Path(model).stem}_edgetpu.log"
        if log_file.exists():
            log += "\n" + log_file.read_text(encoding="utf-8", errors="replace")
        compiled = produced.read_bytes()
    atomic_write_bytes(out, keep_associated_files(Path(model).read_bytes(), compiled))
    return out, parse_compiler_log(log), log


def keep_associated_files(source: bytes, compiled: bytes) -> bytes:
    """Re-append the source model's zip (labels.txt, edgecls.json) if the compiler dropped it."""
    src, dst = io.BytesIO(source), io.BytesIO(compiled)
    try:
        with zipfile.ZipFile(src) as zf:
            files = {name: zf.read(name) for name in zf.namelist()}
    except zipfile.BadZipFile:
        return compiled
    try:
        with zipfile.ZipFile(dst) as zf:
            if set(zf.namelist()) >= set(files):
                return compiled
    except zipfile.BadZipFile:
        pass
    return append_files(compiled, files)
