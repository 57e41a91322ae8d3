"""Synthetic camera frames for the smart-building example: the same every run.

Usage: python3 frames.py OUT_DIR CAMERA [CAMERA ...]

Writes OUT_DIR/CAMERA/CAMERA-HHMM.png, 160x120 colour PNGs: a static room (a wall with a
light gradient, a window, a door, the floor) with sensor noise, and at the times SCHEDULE
names for the camera, people (dark figures that move from frame to frame). Some empty frames
hold what a detector must ignore: a fly crossing the lens (a dark speck far smaller than a
person) or the lights turned up. Frames are drawn with numpy from a seed made of the camera
name and the time, so every run writes the same pixels.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 160, 120
TIMES = ("0800", "0820", "0840", "0900", "0920", "0940", "1000", "1020")
# per camera and time: how many people are in view; "fly" and "lights" are empty frames
# with a distraction in them
SCHEDULE: dict[str, dict[str, int | str]] = {
    "lobby": {"0820": 1, "0840": "fly", "0900": 2, "0920": 1, "0940": "lights", "1020": 1},
    "office": {"0800": "lights", "0900": 1, "0920": 2, "1000": "fly", "1020": 2},
}


def people_in(camera: str, time: str) -> int:
    """How many people SCHEDULE puts into the frame (what a detector should find)."""
    what = SCHEDULE.get(camera, {}).get(time, 0)
    return what if isinstance(what, int) else 0


def room(brightness: float = 0.0) -> np.ndarray:
    """The static background: wall, window, door, floor (BGR), without noise."""
    img = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    wall = np.linspace(205, 180, 75, dtype=np.float32)[:, None, None]
    img[:75] = wall * np.array([1.0, 1.0, 0.97], np.float32)
    img[75:] = np.array([120, 145, 160], np.float32)  # the floor
    img[12:45, 108:150] = np.array([240, 235, 225], np.float32)  # the window
    img[20:75, 14:40] -= 28  # the door: a little darker than the wall
    return img + brightness


def draw_person(img: np.ndarray, x: int, y: int) -> None:
    """A standing figure with its feet at (x, y): a body and a head, in dark clothes."""
    colour = (55, 50, 45)
    cv2.ellipse(img, (x, y - 17), (7, 17), 0, 0, 360, colour, -1)
    cv2.circle(img, (x, y - 38), 5, (70, 85, 110), -1)


def frame(camera: str, time: str) -> np.ndarray:
    seed = zlib.crc32(f"{camera}/{time}".encode())
    rng = np.random.default_rng(seed)
    what = SCHEDULE.get(camera, {}).get(time, 0)
    img = room(brightness=35.0 if what == "lights" else 0.0)
    minute = int(time[:2]) * 60 + int(time[2:])
    for i in range(people_in(camera, time)):
        # walking across the room: the position moves with the time of the frame
        x = 20 + (minute * 3 + i * 61) % 120
        draw_person(img, x, 100 + 8 * i)
    if what == "fly":
        fly = (int(rng.integers(30, 130)), int(rng.integers(20, 60)))
        cv2.circle(img, fly, 2, (30, 30, 30), -1)
    img += rng.normal(0.0, 6.0, img.shape).astype(np.float32)  # sensor noise
    return np.clip(img, 0, 255).astype(np.uint8)


def main(out: Path, cameras: list[str]) -> None:
    for camera in cameras:
        folder = out / camera
        folder.mkdir(parents=True, exist_ok=True)
        for time in TIMES:
            path = folder / f"{camera}-{time}.png"
            if not cv2.imwrite(str(path), frame(camera, time)):
                sys.exit(f"cannot write {path}")
        print(f"{camera}: {len(TIMES)} frames in {folder}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().splitlines()[2])
    main(Path(sys.argv[1]), sys.argv[2:])
