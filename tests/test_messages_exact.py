"""Messages print exactly what they say: no Rich markup eats square brackets in user values,
and credentials in a source URL never reach a message or a log line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import assert_one_line_error, run_cli


def test_fail_prints_brackets_verbatim() -> None:
    code = ("import typer\n"
            "from edgecls.cli import fail\n"
            "from edgecls.errors import MissingDependencyError\n"
            "try:\n"
            "    fail(str(MissingDependencyError('prometheus_client', 'serve', 'the preview')))\n"
            "except typer.Exit as e:\n"
            "    raise SystemExit(e.exit_code)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: the preview needs the 'prometheus_client' module, which is not installed: "
                                   'pip install "edgecls[serve]"'), proc.stderr


def test_user_paths_with_brackets_print_verbatim(tmp_path: Path) -> None:
    data = tmp_path / "photos [old]"
    assert_one_line_error(run_cli("train", str(data), "--out", str(tmp_path / "run [2]")), f"{data} does not exist")


def test_class_names_with_markup_print_verbatim(tmp_path: Path) -> None:
    for cls in ("[bold]a", "b [old]"):
        (tmp_path / "d" / cls).mkdir(parents=True)
    proc = run_cli("train", str(tmp_path / "d"), "--out", str(tmp_path / "run"))
    assert_one_line_error(proc, "class folder")
    assert "/[bold]a has no image" in proc.stderr, proc.stderr


def test_credentials_masked_in_log_lines(tmp_path: Path) -> None:
    import logging

    from edgecls.redact import MaskSecretsFilter, mask_secrets

    assert mask_secrets("rtsp://user:pw@cam:554/s and http://a:b@h/?token=T&x=1") == "rtsp://***@cam:554/s and http://***@h/?token=***&x=1"
    record = logging.LogRecord("edgecls.device", logging.INFO, __file__, 1, "reopening %s", ("rtsp://u:secret@cam/x",), None)
    MaskSecretsFilter().filter(record)
    assert record.getMessage() == "reopening rtsp://***@cam/x"
