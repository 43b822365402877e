"""The HTML report in real headless Chromium (Debian `chromium`, hack/tools/40-chromium.sh):
the charts are in the DOM once the page has loaded, and a screenshot shows them.

Marked `browser`: fails (never skips) when chromium is missing.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from mlfootprint.cli import main
from mlfootprint.report.html import COLOURS
from tests.report.conftest import NOW

pytestmark = pytest.mark.browser

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: run `make tools` (hack/tools/40-chromium.sh)", pytrace=False)
    return path


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    proc = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Minimal PNG decoder (8-bit RGB/RGBA, non-interlaced: what Chromium writes) -> rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if ctype == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            bpp = 3 if colour == 2 else 4
        elif ctype == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line) if bpp == 3 else bytes(v for k, v in enumerate(line) if k % 4 != 3))
        prev = line
    return width, height, rows


@pytest.fixture(scope="module")
def html_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html") / "report.html"
    fixture = Path(__file__).parent / "fixtures" / "snapshot.json"
    assert main(["report", "--from-file", str(fixture), "--month", "2026-11", "--now", NOW, "-q",
                 "--group-by", "label:team", "--price-per-kwh", "0.2", "-o", str(out)]) == 0
    return out


def test_self_contained(html_report: Path) -> None:
    text = html_report.read_text()
    assert "default-src 'none'" in text  # the browser may fetch nothing
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<script" not in text


def test_charts_in_the_dom(tmp_path: Path, html_report: Path) -> None:
    dom = run_chromium(tmp_path, "--virtual-time-budget=2000", "--dump-dom", html_report.as_uri()).stdout
    for chart in ("chart-lifecycle", "chart-groups", "chart-series"):
        assert f'id="{chart}"' in dom, chart
    lifecycle = dom.split('id="chart-lifecycle"')[1].split("</svg>")[0]
    assert len(re.findall(r'class="bar" data-stack="(development|training|inference)"', lifecycle)) == 4
    groups = dom.split('id="chart-groups"')[1].split("</svg>")[0]
    assert re.search(r'class="bar" data-stack="idle"', groups)
    series = dom.split('id="chart-series"')[1].split("</svg>")[0]
    assert set(re.findall(r'class="series" data-stack="(\w+)"', series)) == {"development", "training", "inference", "idle"}


def test_screenshot_shows_the_charts(tmp_path: Path, html_report: Path) -> None:
    png = tmp_path / "report.png"
    run_chromium(tmp_path, "--window-size=1200,2400", f"--screenshot={png}", html_report.as_uri())
    width, height, rows = decode_png(png.read_bytes())
    assert (width, height) == (1200, 2400)
    pixels = [row[i : i + 3] for row in rows[::2] for i in range(0, len(row), 6)]
    non_white = sum(1 for p in pixels if p != b"\xff\xff\xff")
    assert non_white / len(pixels) > 0.05, "the page is (nearly) blank"
    found = set(pixels)
    for stack, colour in COLOURS.items():
        rgb = bytes.fromhex(colour[1:])
        assert rgb in found, f"no {stack} pixels ({colour}) in the screenshot"
