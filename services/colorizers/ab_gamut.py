"""The quantised ab gamut of Zhang et al. (313 bins, grid 10): soft-encoding, class rebalancing, annealed mean.

Facts from "Colorful Image Colorization" (Zhang, Isola, Efros, ECCV 2016), section 2.1-2.3:

* the ab plane is quantised with a grid of 10 and the Q = 313 in-gamut bins are kept;
* a ground-truth ab value is soft-encoded onto its 5 nearest bins, weighted by a Gaussian with sigma 5;
* each pixel's loss is weighted by w = ((1 - lambda) p~ + lambda / Q)^-1, normalised so that
  E_p~[w] = 1, where p~ is the empirical ab prior smoothed by a Gaussian (sigma 5) and lambda = 0.5;
* the prediction is decoded with the annealed mean, the mean of softmax(z / T) with T = 0.38.

The 313 bins are the authors' published set (``pts_in_hull.npy`` of their release), in its order: a ascending,
then b ascending, on the grid of step 10. Bin index q means the same colour here as in the published weights,
so imported checkpoints can be fine-tuned against these targets. ``PUBLISHED_BINS`` lists, for every a, the
first and last b of its bins (each a's bins are contiguous in b); ``NUM_BINS`` is counted from it.

Everything here is a plain function over torch tensors (the centres are also available as numpy).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from colorizers.color import AB_MAX

GRID_SIZE = 10.0
GRID_VALUES = np.arange(-AB_MAX, AB_MAX + GRID_SIZE / 2, GRID_SIZE)  # 23 values, -110 ... 110
FULL_GRID_BINS = GRID_VALUES.size**2  # 529: every grid cell, in gamut or not

SOFT_ENCODING_NEIGHBOURS = 5
SOFT_ENCODING_SIGMA = 5.0
PRIOR_SIGMA = 5.0
REBALANCE_LAMBDA = 0.5
ANNEAL_TEMPERATURE = 0.38

# The published bin set: a -> (first b, last b), every b in between on the grid of 10 (313 bins in all).
PUBLISHED_BINS: dict[int, tuple[int, int]] = {
    -90: (50, 90),
    -80: (20, 90),
    -70: (0, 90),
    -60: (-20, 90),
    -50: (-30, 100),
    -40: (-40, 100),
    -30: (-50, 100),
    -20: (-50, 100),
    -10: (-60, 100),
    0: (-70, 100),
    10: (-80, 90),
    20: (-80, 90),
    30: (-90, 90),
    40: (-100, 90),
    50: (-100, 80),
    60: (-110, 80),
    70: (-110, 80),
    80: (-110, 70),
    90: (-110, 70),
    100: (-90, 0),
}


def full_grid() -> np.ndarray:
    """All 529 grid centres (a-major order), float64 array (529, 2)."""
    a, b = np.meshgrid(GRID_VALUES, GRID_VALUES, indexing="ij")  # (23, 23) each
    return np.stack([a.ravel(), b.ravel()], axis=-1)  # (529, 2)


@functools.cache
def _bin_centres_np() -> np.ndarray:
    step = int(GRID_SIZE)
    rows = [(a, b) for a, (first, last) in sorted(PUBLISHED_BINS.items()) for b in range(first, last + step, step)]
    centres = np.asarray(rows, dtype=np.float64)  # (313, 2), a ascending, then b ascending
    centres.setflags(write=False)
    return centres


def bin_centres_numpy() -> np.ndarray:
    """The published bin centres in Lab units, a-major order, read-only float64 array (NUM_BINS, 2)."""
    return _bin_centres_np()


NUM_BINS = len(_bin_centres_np())  # 313


def bin_centres(device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The published bin centres as a tensor (NUM_BINS, 2) in Lab units."""
    return torch.tensor(_bin_centres_np(), dtype=dtype, device=device)


def _centres_like(centres: torch.Tensor | None, ref: torch.Tensor) -> torch.Tensor:
    if centres is None:
        return bin_centres(ref.device, torch.float32)
    return centres.to(device=ref.device, dtype=torch.float32)


def _pixels(ab: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) -> (B * H * W, 2) in float32."""
    return ab.float().permute(0, 2, 3, 1).reshape(-1, 2)  # (BHW, 2)


def nearest_bins(ab: torch.Tensor, centres: torch.Tensor | None = None) -> torch.Tensor:
    """Index of the nearest bin for every pixel of ab (B, 2, H, W); long tensor (B, H, W)."""
    centres = _centres_like(centres, ab)
    b, _, h, w = ab.shape
    index = torch.cdist(_pixels(ab), centres).argmin(dim=1)  # (BHW,)
    return index.reshape(b, h, w)


def soft_encode(
    ab: torch.Tensor,
    centres: torch.Tensor | None = None,
    neighbours: int = SOFT_ENCODING_NEIGHBOURS,
    sigma: float = SOFT_ENCODING_SIGMA,
) -> torch.Tensor:
    """Soft-encode ab (B, 2, H, W) onto its nearest bins with Gaussian weights: distribution (B, Q, H, W).

    Each pixel's ``neighbours`` nearest centres get weight exp(-d^2 / (2 sigma^2)), normalised to sum 1.
    """
    centres = _centres_like(centres, ab)
    b, _, h, w = ab.shape
    q = centres.shape[0]
    distance = torch.cdist(_pixels(ab), centres)  # (BHW, Q)
    near_d, near_i = distance.topk(neighbours, dim=1, largest=False)  # (BHW, k) each
    weight = torch.softmax(-near_d.square() / (2.0 * sigma**2), dim=1)  # (BHW, k), rows sum to 1
    encoded = torch.zeros_like(distance).scatter_(1, near_i, weight)  # (BHW, Q)
    return encoded.reshape(b, h, w, q).permute(0, 3, 1, 2)  # (B, Q, H, W)


def empirical_prior(ab: torch.Tensor, centres: torch.Tensor | None = None) -> torch.Tensor:
    """Histogram of the nearest bins of ab (B, 2, H, W), normalised to a distribution (Q,).

    For a data set, add up ``bin_counts`` over batches and normalise once instead.
    """
    counts = bin_counts(ab, centres)
    return counts / counts.sum().clamp_min(1.0)


def bin_counts(ab: torch.Tensor, centres: torch.Tensor | None = None) -> torch.Tensor:
    """How many pixels of ab (B, 2, H, W) fall in each bin: float tensor (Q,)."""
    centres = _centres_like(centres, ab)
    index = nearest_bins(ab, centres).reshape(-1)  # (BHW,)
    return torch.bincount(index, minlength=centres.shape[0]).float()


def smooth_prior(prior: torch.Tensor, centres: torch.Tensor | None = None, sigma: float = PRIOR_SIGMA) -> torch.Tensor:
    """Smooth a bin distribution (Q,) with a Gaussian (sigma in ab units) over the bin centres; sums to 1.

    Each bin spreads its mass over all bins in proportion to exp(-d^2 / (2 sigma^2)), so mass is kept.
    """
    centres = _centres_like(centres, prior)
    kernel = torch.softmax(-torch.cdist(centres, centres).square() / (2.0 * sigma**2), dim=1)  # (Q, Q), rows sum 1
    smoothed = prior.float() @ kernel  # (Q,)
    return smoothed / smoothed.sum()


def rebalancing_weights(
    prior: torch.Tensor,
    centres: torch.Tensor | None = None,
    sigma: float = PRIOR_SIGMA,
    lam: float = REBALANCE_LAMBDA,
) -> torch.Tensor:
    """Class-rebalancing weights (Q,): w ~ ((1 - lam) p~ + lam / Q)^-1 with E_p~[w] = 1, p~ the smoothed prior."""
    smoothed = smooth_prior(prior, centres, sigma)
    q = smoothed.shape[0]
    weights = 1.0 / ((1.0 - lam) * smoothed + lam / q)
    return weights / (smoothed * weights).sum()


def pixel_weights(target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-pixel loss weight v = w[argmax_q Z] for a soft-encoded target Z (B, Q, H, W): (B, H, W)."""
    return weights.to(target.device)[target.argmax(dim=1)]


def rebalanced_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """The paper's multinomial cross-entropy: mean over pixels of -v(Z) * sum_q Z_q log softmax(logits)_q.

    ``logits`` and ``target`` are (B, Q, H, W); ``weights`` (Q,) from ``rebalancing_weights`` (None: all 1).
    """
    per_pixel = -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1)  # (B, H, W)
    if weights is not None:
        per_pixel = per_pixel * pixel_weights(target, weights)
    return per_pixel.mean()


def annealed_mean(
    logits: torch.Tensor, centres: torch.Tensor | None = None, temperature: float = ANNEAL_TEMPERATURE
) -> torch.Tensor:
    """Decode logits (B, Q, H, W) to ab (B, 2, H, W): the mean of the bin centres under softmax(logits / T).

    T = 1 is the plain expectation; T -> 0 tends to the mode (more saturated, less spatially consistent).
    """
    centres = _centres_like(centres, logits)
    scaled = logits.float() / temperature
    # softmax written out: torch.softmax over dim 1 of a (B, Q, H, W) map is about 2.5x slower on the CPU
    weights = (scaled - scaled.amax(dim=1, keepdim=True)).exp_()  # (B, Q, H, W), unnormalised
    return torch.einsum("bqhw,qc->bchw", weights, centres) / weights.sum(dim=1, keepdim=True)  # (B, 2, H, W)
