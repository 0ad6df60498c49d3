"""`plait serve`: refuses to listen off-loopback without a key (never a CLI flag), a
real uvicorn process answers, and SIGTERM lets an in-flight request finish."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plait.cli import app

SRC = Path(__file__).resolve().parents[2] / "src"


def test_off_loopback_without_a_key_is_refused(classifier_folder: Path, monkeypatch):
    monkeypatch.delenv("PLAIT_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["serve", str(classifier_folder), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "PLAIT_API_KEY" in result.output and "Traceback" not in result.output


def test_there_is_no_api_key_option():
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "--api-key" not in result.output
    assert "PLAIT_API_KEY" in result.output


def test_missing_model_folder_is_a_clear_error(tmp_path: Path):
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no model folder" in result.output


def test_runtime_and_folder_must_match(classifier_folder: Path, tmp_path: Path):
    result = CliRunner().invoke(app, ["serve", str(classifier_folder), "--runtime", "onnx"])
    assert result.exit_code == 2 and "plait export" in result.output
    fake_export = tmp_path / "export"
    fake_export.mkdir()
    (fake_export / "export.json").write_text("{}")
    result = CliRunner().invoke(app, ["serve", str(fake_export)])
    assert result.exit_code == 2 and "--runtime onnx" in result.output
    result = CliRunner().invoke(app, ["serve", str(classifier_folder), "--runtime", "tf"])
    assert result.exit_code == 2 and "torch or onnx" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The real CLI in a subprocess, its model slowed down by 1.5 s per call so a request is
# surely in flight when SIGTERM arrives.
SLOW_SERVE = """
import sys, time
from plait.tasks.supervised_predictor import Predictor
original = Predictor.predict
def slow(self, *args, **kwargs):
    time.sleep(1.5)
    return original(self, *args, **kwargs)
Predictor.predict = slow
from plait.cli import app
app(sys.argv[1:], prog_name="plait")
"""


def _get(url: str, timeout: float = 5.0) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return answer.status, json.loads(answer.read())


def test_real_server_answers_and_finishes_in_flight_requests_on_sigterm(
    classifier_folder: Path, tmp_path: Path
):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "PLAIT_API_KEY": ""}
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_SERVE, "serve", str(classifier_folder), "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(f"{base}/v1/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"the server did not start:\n{log.read()}")
            time.sleep(0.2)
        result: dict = {}

        def predict() -> None:
            body = json.dumps({"rows": [{"caption": "a red circle"}]}).encode()
            request = urllib.request.Request(
                f"{base}/v1/predict",
                data=body,
                headers={"content-type": "application/json", "x-request-id": "in-flight-1"},
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                result["status"] = answer.status
                result["body"] = json.loads(answer.read())

        caller = threading.Thread(target=predict)
        caller.start()
        time.sleep(0.7)  # the request is inside the slow model call now
        process.send_signal(signal.SIGTERM)
        caller.join(30)
        assert result.get("status") == 200, result
        assert result["body"]["rows"][0]["error"] is None
        # uvicorn re-raises the signal once it has shut down cleanly
        assert process.wait(30) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log.seek(0)
    text = log.read()
    assert "[in-flight-1] POST /v1/predict -> 200" in text
    assert "Finished server process" in text
