"""Screenshots of what a person looks at (report pages, the Dagster UI) with headless Chromium, and a
small PNG decoder so tests can tell a drawn page from a blank one."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

ARTIFACTS = Path(__file__).resolve().parent.parent / "var" / "test-artifacts"


def screenshot(url: str, name: str, size: tuple[int, int], wait_ms: int = 0) -> Path:
    """Render ``url`` in headless Chromium to ``var/test-artifacts/<name>``; ``wait_ms`` lets scripts run."""
    if shutil.which("chromium") is None:
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / name
    shot.unlink(missing_ok=True)
    command = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    if wait_ms:
        command.append(f"--virtual-time-budget={wait_ms}")
    command += [f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}", url]
    subprocess.run(command, check=True, capture_output=True, timeout=180)
    return shot


def png_pixels(data: bytes) -> tuple[int, int, np.ndarray]:
    """(width, height, pixels as a rows x (width * channels) uint8 array) of an 8-bit truecolour PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, idat, header = 8, b"", None
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        chunk = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBB", chunk[:10])
        elif kind == b"IDAT":
            idat += chunk
        offset += 12 + length
    width, height, depth, colour = header
    assert depth == 8 and colour in (2, 6)
    channels = 3 if colour == 2 else 4
    stride, raw = width * channels, zlib.decompress(idat)
    rows = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1)
        if kind == 1:  # Sub: a running sum per channel
            line = (np.cumsum(line.reshape(width, channels).astype(np.int64), axis=0) % 256).astype(np.uint8).ravel()
        elif kind == 2:  # Up
            line = line + previous
        elif kind in (3, 4):  # Average, Paeth: each byte depends on the one decoded before it
            out, up = bytearray(line.tobytes()), previous.tolist()
            for x in range(stride):
                a = out[x - channels] if x >= channels else 0
                b, c = up[x], up[x - channels] if x >= channels else 0
                if kind == 3:
                    out[x] = (out[x] + (a + b) // 2) & 0xFF
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    out[x] = (out[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
            line = np.frombuffer(bytes(out), np.uint8)
        rows[y] = previous = line
    return width, height, rows
