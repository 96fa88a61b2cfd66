"""Importing the package and its data pipeline opens no network connection."""

from __future__ import annotations

import os
import subprocess
import sys

from src.utils.config import PROJECT_ROOT

PROBE = """
import socket
attempts = []
real_connect = socket.socket.connect
def record(self, address):
    attempts.append(address)
    raise OSError("network disabled in this test")
socket.socket.connect = record
socket.create_connection = lambda address, *a, **k: record(None, address)
import src.data.transforms, src.data.datamodule  # albumentations comes in here
import albumentations
print("ATTEMPTS", attempts)
"""


def test_importing_the_data_pipeline_makes_no_network_call():
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ATTEMPTS []" in proc.stdout, proc.stdout
