"""A loss curve as a small PNG, written with zlib alone (no plotting library needed).

Train loss is drawn in blue, eval loss (when any) in orange, over a light grid; the axes' ranges are
in metrics.json and the model card, the picture shows the shape.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

WIDTH, HEIGHT, MARGIN = 640, 360, 24
_GRID, _AXIS = (225, 225, 225), (90, 90, 90)
BLUE, ORANGE = (31, 119, 180), (255, 127, 14)


def loss_png(path: Path, curves: list[tuple[list[tuple[float, float]], tuple[int, int, int]]]) -> None:
    """curves: [(points as (step, loss), colour)], drawn on shared axes."""
    pixels = bytearray(b"\xff" * (WIDTH * HEIGHT * 3))
    points = [p for curve, _ in curves for p in curve]
    if points:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        box = (min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1,
               min(0.0, min(ys)), max(ys) * 1.05 if max(ys) > 0 else 1.0)
        _grid(pixels)
        for curve, colour in curves:
            _polyline(pixels, [_to_pixel(x, y, box) for x, y in curve], colour)
    _axes(pixels)
    path.write_bytes(_encode(pixels))


def _to_pixel(x: float, y: float, box: tuple[float, float, float, float]) -> tuple[int, int]:
    x0, x1, y0, y1 = box
    px = MARGIN + (x - x0) / (x1 - x0) * (WIDTH - 2 * MARGIN)
    py = HEIGHT - MARGIN - (y - y0) / (y1 - y0) * (HEIGHT - 2 * MARGIN)
    return round(px), round(py)


def _set(pixels: bytearray, x: int, y: int, colour: tuple[int, int, int]) -> None:
    if 0 <= x < WIDTH and 0 <= y < HEIGHT:
        at = (y * WIDTH + x) * 3
        pixels[at:at + 3] = bytes(colour)


def _polyline(pixels: bytearray, points: list[tuple[int, int]], colour: tuple[int, int, int]) -> None:
    if len(points) == 1:
        points = points * 2
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(steps + 1):
            x, y = x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps
            for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):  # 2-pixel pen
                _set(pixels, round(x) + dx, round(y) + dy, colour)


def _grid(pixels: bytearray) -> None:
    for k in range(1, 5):
        y = MARGIN + k * (HEIGHT - 2 * MARGIN) // 5
        x = MARGIN + k * (WIDTH - 2 * MARGIN) // 5
        for i in range(MARGIN, WIDTH - MARGIN):
            _set(pixels, i, y, _GRID)
        for j in range(MARGIN, HEIGHT - MARGIN):
            _set(pixels, x, j, _GRID)


def _axes(pixels: bytearray) -> None:
    for i in range(MARGIN, WIDTH - MARGIN + 1):
        _set(pixels, i, HEIGHT - MARGIN, _AXIS)
    for j in range(MARGIN, HEIGHT - MARGIN + 1):
        _set(pixels, MARGIN, j, _AXIS)


def _encode(pixels: bytearray) -> bytes:
    rows = b"".join(b"\x00" + bytes(pixels[y * WIDTH * 3:(y + 1) * WIDTH * 3]) for y in range(HEIGHT))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b"")
