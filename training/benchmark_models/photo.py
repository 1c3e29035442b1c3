"""The test photo: a deterministic synthetic outdoor scene that decodes, resizes and encodes like a camera photo."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

PHOTO_JPEG_QUALITY = 90


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Value noise: a random grid ``cells`` high upsampled bicubically to (height, width), float32 about N(0, 1)."""
    grid_w, grid_h = max(2, cells * width // max(height, 1)), max(2, cells)
    grid = rng.standard_normal((grid_h, grid_w), dtype=np.float32)
    resized = Image.fromarray(grid, "F").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(resized)  # (height, width)


def synthetic_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A deterministic outdoor-like photo: sky and ground, sharp-edged objects, 1/f texture and sensor grain.

    The scene is drawn at a quarter of the size and upsampled, then full-resolution detail and grain are
    added, so its JPEG compresses like a camera photo (a few megabytes at 12 megapixels and q90) and decoding
    and encoding cost what they cost on real uploads.
    """
    rng = np.random.default_rng(seed)
    w, h = max(8, width // 4), max(8, height // 4)
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]  # (h, 1)
    xx = np.linspace(0.0, width / height, w, dtype=np.float32)[None, :]  # (1, w), same units as yy
    horizon = 0.55 + 0.04 * _smooth_noise(rng, w, h, 2)[:1]  # (1, w), rolling hills
    ground = 0.5 + 0.5 * np.tanh((yy - horizon) * 200.0)  # (h, w): 0 in the sky, 1 on the ground
    sky = np.array([0.42, 0.60, 0.86], np.float32)
    land = np.array([0.36, 0.42, 0.22], np.float32)
    rgb = (sky * (1.0 - 0.4 * yy)[..., None]) * (1.0 - ground)[..., None]  # (h, w, 3)
    rgb += (land * (0.7 + 0.5 * yy)[..., None]) * ground[..., None]
    rgb += 0.03 * np.stack([_smooth_noise(rng, w, h, 3) for _ in range(3)], axis=-1)  # slow colour drift
    for _ in range(12):  # objects: ellipses with a one-pixel soft edge and their own shading
        cx, cy = rng.uniform(0.0, width / height), rng.uniform(0.45, 1.0)
        rx, ry = rng.uniform(0.02, 0.15, 2)
        dist = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)  # (h, w), 1 on the outline
        inside = np.clip((1.0 - dist) * min(rx, ry) * h + 0.5, 0.0, 1.0)[..., None]  # (h, w, 1)
        colour = rng.uniform(0.05, 0.95, 3).astype(np.float32) * (1.1 - 0.3 * np.clip(dist, 0, 1))[..., None]
        rgb += inside * (colour - rgb)
    texture = sum(_smooth_noise(rng, w, h, cells) * cells**-0.35 for cells in (8, 32, 128, h // 2))  # (h, w)
    rgb *= (1.0 + 0.35 * texture)[..., None]
    small = Image.fromarray(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")
    full = np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)  # (H, W, 3)
    grain = rng.standard_normal((height, width), dtype=np.float32) * 3.0  # (H, W) luminance grain
    full = full + grain[..., None]  # (H, W, 3)
    return Image.fromarray(np.clip(full + 0.5, 0, 255).astype(np.uint8), "RGB")


def jpeg_bytes(image: Image.Image, quality: int = PHOTO_JPEG_QUALITY) -> bytes:
    """The photo as an upload would arrive: a JPEG file in memory."""
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
