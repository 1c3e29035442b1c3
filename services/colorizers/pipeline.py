"""The one inference path: image -> working-size grey -> model -> chroma merged at the original size."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from PIL import Image
from torch import nn

from colorizers import imaging, weights
from colorizers.color import lab_to_rgb, rgb_to_lab
from colorizers.conventions import ConventionError, Conventions
from colorizers.registry import ModelSpec, create_model, get_spec

if TYPE_CHECKING:  # importing the models package at run time would register every family
    from colorizers.models.base import ColorizationModel

log = logging.getLogger(__name__)

MIN_SIZE, MAX_SIZE = 32, 1024
MAX_HINTS = 64
_HEX_COLOUR = re.compile(r"^#?([0-9a-fA-F]{6})$")


class RequestError(ValueError):
    """A request option (hints, seed, size) that cannot be used; the message says why."""

    code = "invalid_option"


class ReferenceRequestError(RequestError):
    """A missing, unwanted or unusable colour reference photo (HTTP 400); ``code`` says which."""

    def __init__(self, message: str, code: str = "bad_reference") -> None:
        super().__init__(message)
        self.code = code


MIN_REFERENCE_SIDE = 16  # a reference smaller than this on a side has no detail to match


def select_device(setting: str | None = None) -> torch.device:
    """The one device setting: ``COLORIZERS_DEVICE`` = auto (CUDA when present), cpu, cuda or cuda:N."""
    setting = (setting or os.environ.get("COLORIZERS_DEVICE") or "auto").strip().lower()
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"COLORIZERS_DEVICE={setting} but no CUDA device is available")
    return torch.device(setting)


@dataclass(frozen=True)
class Hint:
    """A user colour point: x, y normalised to [0, 1] from the top-left corner; colour as sRGB bytes."""

    x: float
    y: float
    rgb: tuple[int, int, int]


def parse_hints(raw: str | Sequence[Any] | None) -> list[Hint]:
    """Parse ``[{"x": .25, "y": .6, "color": "#aa3300"}, ...]`` (JSON text or a list) into hints."""
    if raw is None or raw == "" or raw == []:
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RequestError(f"hints must be JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(raw, list):
        raise RequestError('hints must be a JSON list like [{"x": 0.5, "y": 0.5, "color": "#3366cc"}]')
    if len(raw) > MAX_HINTS:
        raise RequestError(f"at most {MAX_HINTS} hints are allowed, got {len(raw)}")
    hints = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not {"x", "y", "color"} <= set(item):
            raise RequestError(f"hint {i} must be an object with x, y and color")
        x, y, colour = item["x"], item["y"], item["color"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in (x, y)):
            raise RequestError(f"hint {i}: x and y must be numbers between 0 and 1")
        match = _HEX_COLOUR.match(str(colour))
        if not match:
            raise RequestError(f"hint {i}: color must be a hex colour like #3366cc, got {colour!r}")
        value = int(match.group(1), 16)
        hints.append(Hint(float(x), float(y), (value >> 16, (value >> 8) & 255, value & 255)))
    return hints


def hints_to_tensors(hints: Sequence[Hint], height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hints as the (1, 2, H, W) ab map and (1, 1, H, W) mask the hint-taking models read."""
    hint_ab = torch.zeros(1, 2, height, width)
    mask = torch.zeros(1, 1, height, width)
    radius = max(1, max(height, width) // 128)
    for hint in hints:
        ab = _rgb_to_ab(hint.rgb)
        cx, cy = min(int(hint.x * width), width - 1), min(int(hint.y * height), height - 1)
        rows = slice(max(0, cy - radius), cy + radius + 1)
        cols = slice(max(0, cx - radius), cx + radius + 1)
        hint_ab[0, :, rows, cols] = torch.tensor(ab).view(2, 1, 1)
        mask[0, :, rows, cols] = 1.0
    return hint_ab, mask


def _rgb_to_ab(rgb: tuple[int, int, int]) -> tuple[float, float]:
    from colorizers.color import rgb_to_lab

    lab = rgb_to_lab(np.asarray(rgb, dtype=np.float64) / 255.0)
    return float(lab[1]), float(lab[2])


@dataclass
class WorkItem:
    """One working-size grey image and its options, as a batch element."""

    grey: Image.Image
    hints: Sequence[Hint] = ()
    seed: int | None = None
    reference: Image.Image | None = None  # colour reference photo (RGB, any size), for reference models


class Colorizer:
    """A model ready for inference: one code path for the handler, gateway, CLI and evaluation."""

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str | None = None,
        meta: dict[str, Any] | None = None,
        device: str | torch.device | None = None,
    ):
        self.device = device if isinstance(device, torch.device) else select_device(device)
        # Every registered family is a ColorizationModel (``to`` and ``eval`` return the model itself).
        self.model = cast("ColorizationModel", model.to(self.device).eval())
        self.spec: ModelSpec = get_spec(self.model.model_id)
        self.name = name or self.model.model_id
        self.meta = meta or {}
        # How the weights expect to be fed and decoded (imported "-x" weights: their authors' ways).
        self.conventions = Conventions.of(self.meta)
        self.conventions.apply(self.model)
        if self.conventions.deoldify and not hasattr(self.model, "render"):
            raise ConventionError(f"{self.name}: DeOldify's pipeline needs a DeOldify generator with render()")

    @classmethod
    def load(
        cls,
        name: str,
        weights_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device | None = None,
    ) -> Colorizer:
        """Weights from ``<weights_dir>/<name>.safetensors`` if present, else an untrained compact model."""
        directory = weights.weights_dir(weights_dir)
        if (Path(directory) / f"{name}.json").exists():
            model, meta = weights.load(name, directory)
            return cls(model, name=name, meta=meta, device=device)
        log.warning("no weights for %s in %s: using an untrained compact model", name, directory)
        model = create_model(name, "compact")
        if hasattr(model, "load_untrained"):  # parts that work untrained (the exemplar's correspondence)
            cast(Callable[[], None], model.load_untrained)()
        return cls(model, name=name, meta={"provenance": "untrained", "name": name}, device=device)

    @property
    def working_size(self) -> int:
        return self.conventions.default_size(weights.working_size(self.meta, self.spec))

    def model_size(self, size: int | None = None) -> int:
        """The model's picture size for a request's ``size`` (None: the working size): about its square's area."""
        return self.conventions.model_size(size, self.working_size)

    def model_input(self, photo: Image.Image, size: int | None = None) -> Image.Image:
        """The grey picture the model gets, made the way its weights expect (see ``conventions``)."""
        return imaging.to_model_input(photo, self.model_size(size), preprocess=self.conventions.preprocess)

    def check_options(
        self,
        hints: Sequence[Hint] = (),
        seed: int | None = None,
        size: int | None = None,
        reference: Image.Image | None = None,
    ) -> None:
        if reference is not None:
            check_reference(self.name, self.spec, reference)
        if hints and not self.spec.supports_hints:
            raise RequestError(f"model {self.name} does not take colour hints")
        if seed is not None and not self.spec.supports_seed:
            raise RequestError(f"model {self.name} does not take a seed")
        if seed is not None and not 0 <= seed < 2**31:
            raise RequestError("seed must be between 0 and 2147483647")
        if size is not None and not MIN_SIZE <= size <= MAX_SIZE:
            raise RequestError(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels")

    @torch.inference_mode()
    def colorize_working_batch(self, items: Sequence[WorkItem]) -> list[Image.Image]:
        """Colour images at the working size; items that share size and seed run as one batch."""
        results: list[Image.Image | None] = [None] * len(items)
        groups: dict[tuple[tuple[int, int], int | None, bool], list[int]] = {}
        for index, item in enumerate(items):
            self.check_options(item.hints, item.seed, reference=item.reference)
            groups.setdefault((item.grey.size, item.seed, item.reference is not None), []).append(index)
        for (_, seed, referenced), indices in groups.items():
            if self.conventions.deoldify:
                for i, rgb in zip(indices, self._render([items[i].grey for i in indices]), strict=True):
                    results[i] = rgb
                continue
            lightness = [imaging.lightness(items[i].grey) for i in indices]
            l = torch.from_numpy(np.stack(lightness)[:, None]).to(self.device)  # (B, 1, H, W)
            hint_ab = hint_mask = None
            if self.spec.supports_hints:
                pairs = [hints_to_tensors(items[i].hints, *l.shape[-2:]) for i in indices]
                hint_ab = torch.cat([p[0] for p in pairs]).to(self.device)  # (B, 2, H, W)
                hint_mask = torch.cat([p[1] for p in pairs]).to(self.device)  # (B, 1, H, W)
            extra = {}
            if referenced:
                height, width = l.shape[-2:]
                # ``referenced``: every item of this group has a reference
                labs = [reference_lab(cast(Image.Image, items[i].reference), (width, height)) for i in indices]
                extra["reference"] = torch.from_numpy(np.stack(labs)).permute(0, 3, 1, 2).to(self.device)
            ab = self.model.predict_ab(l.float(), hint_ab=hint_ab, hint_mask=hint_mask, seed=seed, **extra)
            lab = torch.cat([l.float(), ab.float()], dim=1).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3)
            for i, one in zip(indices, lab, strict=True):
                rgb8 = np.clip(lab_to_rgb(one.astype(np.float64)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
                results[i] = Image.fromarray(rgb8, "RGB")
        return [r for r in results if r is not None]

    def _render(self, greys: Sequence[Image.Image]) -> list[Image.Image]:
        """DeOldify's own step: the grey picture as RGB in [0, 1], the generator's RGB truncated to 8 bits."""
        planes = np.stack([np.asarray(g.convert("L"), dtype=np.float32) for g in greys]) / np.float32(255.0)
        x = torch.from_numpy(planes)[:, None].expand(-1, 3, -1, -1).to(self.device)  # (B, 3, H, W)
        render = cast(Callable[[torch.Tensor], torch.Tensor], self.model.render)  # DeOldify's, see __init__
        rgb = render(x)  # (B, 3, H, W) in [0, 1]
        rgb8 = (rgb.float() * 255.0).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()  # truncated, as DeOldify
        return [Image.fromarray(np.ascontiguousarray(one), "RGB") for one in rgb8]

    def prepare(
        self,
        image: bytes,
        *,
        hints: str | None = None,
        seed: int | None = None,
        size: int | None = None,
        reference: bytes | None = None,
    ) -> WorkItem:
        """Validate a serving request (image bytes + raw options) into a working-size batch element.

        Serving is strict about references: a model that needs one refuses a request without it (the library's
        ``colorize`` falls back to the automatic result instead).
        """
        parsed = parse_hints(hints)
        self.check_options(parsed, seed, size)
        if not image:
            raise RequestError("the request has no image")
        ref = decode_reference(reference) if reference else None
        self.require_reference(ref is not None)
        if ref is not None:
            check_reference(self.name, self.spec, ref)
        decoded = imaging.decode(image)
        return WorkItem(self.model_input(decoded.pixels, size), parsed, seed, ref)

    def require_reference(self, given: bool) -> None:
        """Serving: a model that needs a reference photo gets one, a model that takes none gets none."""
        if self.spec.needs_reference and not given:
            raise missing_reference(self.name)

    def reference_input(self, rgb: Image.Image, size: int | None = None) -> Image.Image:
        """The colour reference at the model's working size (what the gateway sends a model server)."""
        return reference_input(rgb, self.model_size(size))

    def colorize_working(
        self,
        grey: Image.Image,
        *,
        hints: Sequence[Hint] = (),
        seed: int | None = None,
        reference: Image.Image | None = None,
    ) -> Image.Image:
        return self.colorize_working_batch([WorkItem(grey, hints, seed, reference)])[0]

    def colorize(
        self,
        image: Image.Image | bytes,
        *,
        hints: Sequence[Hint] = (),
        seed: int | None = None,
        size: int | None = None,
        reference: Image.Image | bytes | None = None,
    ) -> Image.Image:
        """Colourise a photo of any size; the result has the input's size (alpha, if any, restored).

        ``reference``: a colour photo of the same scene for models with ``supports_reference`` (bytes are
        decoded with the upload limits). Without one such a model gives its automatic (fallback) colours.
        """
        ref = decode_reference(reference) if isinstance(reference, bytes) else reference
        self.check_options(hints, seed, size, reference=ref)
        decoded: imaging.DecodedImage | None = None
        if isinstance(image, bytes):
            decoded = imaging.decode(image)
            photo = decoded.pixels
        else:
            photo = image if image.mode in ("RGB", "L") else image.convert("RGB")
        small_ref = self.reference_input(ref, size) if ref is not None else None
        colour_small = self.colorize_working(self.model_input(photo, size), hints=hints, seed=seed, reference=small_ref)
        result = imaging.merge_chroma(photo, colour_small, merge=self.conventions.merge)
        if decoded and decoded.alpha is not None:
            result.putalpha(decoded.alpha)
        return result


def missing_reference(model: str) -> ReferenceRequestError:
    """The error for a request without the reference photo a model needs (code ``needs_reference``)."""
    return ReferenceRequestError(
        f"model {model} needs a reference: a colour photo of the same scene or person (the 'reference' field)",
        code="needs_reference",
    )


def decode_reference(data: bytes, *, max_pixels: int = imaging.DEFAULT_MAX_PIXELS) -> Image.Image:
    """A reference photo's bytes as RGB, decoded with the same limits as uploads; errors name the reference."""
    try:
        return imaging.decode(data, max_pixels=max_pixels).rgb
    except imaging.ImageError as exc:
        raise type(exc)(f"Reference photo: {exc.message}") from None


def check_reference(name: str, spec: ModelSpec, reference: Image.Image) -> None:
    """Refuse a reference a model does not take, or one with nothing to carry over (too small, no colour)."""
    if not spec.supports_reference:
        raise ReferenceRequestError(f"model {name} does not take a reference photo; send none or pick 'exemplar'")
    check_reference_image(reference)


def check_reference_image(reference: Image.Image) -> None:
    """Refuse a reference with nothing to carry over: too small to match, or without colour."""
    width, height = reference.size
    if min(width, height) < MIN_REFERENCE_SIDE:
        raise ReferenceRequestError(
            f"the reference photo is {width} x {height} pixels; it needs at least {MIN_REFERENCE_SIDE} on each side"
        )
    if not reference_is_colourful(reference):
        raise ReferenceRequestError(
            "the reference photo has no colour (it is black and white); send a colour photo of the same scene"
        )


def reference_is_colourful(reference: Image.Image, floor: float = 3.0) -> bool:
    """Whether a photo has colour to give: mean CIE chroma of a small copy at least ``floor`` (Lab units)."""
    small = reference.convert("RGB")
    small.thumbnail((64, 64), Image.Resampling.BILINEAR)
    return float(np.linalg.norm(imaging.chroma(small), axis=-1).mean()) >= floor


def reference_input(rgb: Image.Image, size: int) -> Image.Image:
    """The colour reference as a model server gets it: RGB of ``imaging.model_input_size``, like the grey photo."""
    img = rgb if rgb.mode == "RGB" else rgb.convert("RGB")
    target = imaging.model_input_size(*img.size, size)
    if img.size != target:
        img = img.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)
    return img


def reference_lab(rgb: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """CIE Lab (H, W, 3) float32 of the reference resized to ``size`` = (width, height)."""
    img = rgb if rgb.mode == "RGB" else rgb.convert("RGB")
    if img.size != size:
        img = img.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    return rgb_to_lab(np.asarray(img, dtype=np.float32) / 255.0).astype(np.float32)
