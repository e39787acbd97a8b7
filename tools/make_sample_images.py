#!/usr/bin/env python3
"""Writes the small sample camera frames in assets/samples/ (PNG, RGB8) used by scripts/demo.sh.

Standard library only (zlib + struct), deterministic: a table-top scene with a red cube, seen from
two cameras of different sizes (the policy resizes with padding, so any size works).
"""
import os
import struct
import zlib


def png_bytes(width, height, pixel):
    """pixel(x, y) -> (r, g, b); returns the bytes of an 8-bit RGB PNG."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: none
        for x in range(width):
            rows.extend(pixel(x, y))

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit, colour type 2 (RGB)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b"")


def scene(width, height, cube_x, cube_y, cube_size, horizon):
    def pixel(x, y):
        if cube_x <= x < cube_x + cube_size and cube_y <= y < cube_y + cube_size:
            shade = 40 if (x - cube_x) < 2 or (y - cube_y) < 2 else 0  # lit edge
            return (200 + shade // 2, 30 + shade, 30 + shade)
        if y < horizon:  # wall: soft vertical gradient
            g = 150 + (y * 60) // max(horizon, 1)
            return (g, g, min(255, g + 20))
        wood = 110 + ((x * 7 + y * 3) % 23)  # table: grainy brown
        return (wood, (wood * 3) // 4, wood // 2)

    return pixel


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "samples")
    os.makedirs(out, exist_ok=True)
    frames = {
        "camera1.png": (64, 48, scene(64, 48, 26, 24, 12, 16)),  # front camera, 4:3
        "camera2.png": (64, 64, scene(64, 64, 20, 34, 16, 20)),  # wrist/top camera, square
    }
    for name, (w, h, px) in frames.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(png_bytes(w, h, px))
        print(f"wrote assets/samples/{name} ({w}x{h})")


if __name__ == "__main__":
    main()
