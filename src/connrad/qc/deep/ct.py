"""CT numbers and noise measured on one frame in HU, without segmentation.

Statistics are taken on non-overlapping square blocks (16 px on a 512 px frame: a sliding
window with a stride of its size), which keeps a 512 x 512 frame to a few milliseconds and
lets simple rules pick regions: air outside the body, quiet soft tissue, a water phantom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from connrad.qc.deep.limits import PixelLimits
from connrad.qc.findings import Finding, warn


@dataclass(frozen=True)
class CtMeasurement:
    """CT numbers and noise of one frame (None: not measurable on this frame)."""

    air_mean_hu: float | None
    sd_air_hu: float | None
    sd_soft_tissue_hu: float | None
    water_mean_hu: float | None
    water_area_fraction: float | None


def measure_ct(
    hu: np.ndarray, padding: np.ndarray | None = None, limits: PixelLimits = PixelLimits()
) -> CtMeasurement:
    """Air, water and noise of a CT frame in HU (``padding``: pixels outside the image).

    Air: uniform blocks within ``ct_air_search_hu`` of ``ct_air_hu`` that reach the image
    border through low-density blocks (outside the body, so not lung); their median mean
    and median std. Soft-tissue noise: the quietest (10th percentile std) blocks whose
    pixels all lie in ``ct_soft_tissue_hu`` widened by ``ct_soft_tissue_margin_hu`` (no
    edge with air or bone). Water: only on one large uniform region near 0 HU, as in a
    phantom; patients seldom have one.
    """
    size = _block_size(hu.shape)
    if size is None:
        return CtMeasurement(None, None, None, None, None)
    pad = np.zeros(hu.shape, dtype=bool) if padding is None else padding
    pad = pad | (hu <= limits.ct_air_hu - 200)  # below any air: outside the reconstruction
    b = _blocks(hu, pad, size)
    usable = ~b.padded & (b.stds > 0.1)  # a constant block is a fill, not a measurement
    outside = ~usable | (b.means < limits.ct_air_hu + 200)
    air = _border_connected(outside) & usable
    air &= np.abs(b.means - limits.ct_air_hu) <= limits.ct_air_search_hu
    air &= b.maxs <= limits.ct_air_hu + 400  # no tissue in the block
    air_mean = sd_air = None
    if np.count_nonzero(air) >= limits.ct_min_blocks:
        air_mean = float(np.median(b.means[air]))
        sd_air = float(np.median(b.stds[air]))
    low, high = limits.ct_soft_tissue_hu
    margin = limits.ct_soft_tissue_margin_hu
    tissue = usable & (b.means >= low) & (b.means <= high)
    tissue &= (b.mins >= low - margin) & (b.maxs <= high + margin)
    sd_soft = None
    if np.count_nonzero(tissue) >= limits.ct_min_blocks:
        sd_soft = float(np.quantile(b.stds[tissue], 0.1, method="lower"))
    water_mean = water_area = None
    if sd_soft is not None:
        uniform = tissue & (np.abs(b.means) <= limits.ct_water_search_hu)
        uniform &= b.stds <= 2.0 * max(sd_soft, 1.0)
        region = _largest_region(uniform)
        area = np.count_nonzero(region) / region.size
        if area >= limits.ct_water_min_area:
            means = b.means[region]
            noise_var = float(np.mean(b.stds[region] ** 2)) / size**2
            spread = math.sqrt(max(0.0, float(np.var(means)) - noise_var))
            if spread <= limits.ct_water_max_inhomogeneity_hu:
                water_mean, water_area = float(np.mean(means)), area
    return CtMeasurement(air_mean, sd_air, sd_soft, water_mean, water_area)


def ct_checks(hu: np.ndarray, padding: np.ndarray, limits: PixelLimits) -> list[Finding]:
    """ct.air-hu-off, ct.water-hu-off and ct.noisy from :func:`measure_ct`."""
    m = measure_ct(hu, padding, limits)
    findings: list[Finding] = []
    if m.air_mean_hu is not None and (
        abs(m.air_mean_hu - limits.ct_air_hu) > limits.ct_air_tolerance_hu
    ):
        findings.append(
            warn(
                "ct.air-hu-off",
                f"air outside the body measures {m.air_mean_hu:.0f} HU, expected "
                f"{limits.ct_air_hu:.0f} +/- {limits.ct_air_tolerance_hu:.0f} HU",
                "RescaleIntercept",
                mean_air_hu=round(m.air_mean_hu, 1),
                expected_hu=limits.ct_air_hu,
                tolerance_hu=limits.ct_air_tolerance_hu,
            )
        )
    if m.water_mean_hu is not None and abs(m.water_mean_hu) > limits.ct_water_tolerance_hu:
        findings.append(
            warn(
                "ct.water-hu-off",
                f"a large uniform water-like region measures {m.water_mean_hu:.1f} HU, "
                f"expected 0 +/- {limits.ct_water_tolerance_hu:.0f} HU",
                "RescaleIntercept",
                mean_water_hu=round(m.water_mean_hu, 2),
                area_fraction=round(m.water_area_fraction or 0.0, 3),
                tolerance_hu=limits.ct_water_tolerance_hu,
            )
        )
    noise = m.sd_soft_tissue_hu if m.sd_soft_tissue_hu is not None else m.sd_air_hu
    if noise is not None and noise > limits.ct_noise_sd_max_hu:
        findings.append(
            warn(
                "ct.noisy",
                f"image noise is {noise:.1f} HU (standard deviation), above "
                f"{limits.ct_noise_sd_max_hu:.0f} HU",
                "PixelData",
                sd_air=None if m.sd_air_hu is None else round(m.sd_air_hu, 2),
                sd_soft_tissue=None
                if m.sd_soft_tissue_hu is None
                else round(m.sd_soft_tissue_hu, 2),
                threshold_hu=limits.ct_noise_sd_max_hu,
            )
        )
    return findings


def _block_size(shape: tuple[int, ...]) -> int | None:
    side = min(shape[:2])
    if side < 32:
        return None
    return 16 if side >= 256 else max(4, side // 16)


@dataclass(frozen=True)
class _Blocks:
    means: np.ndarray
    stds: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray
    padded: np.ndarray  # the block holds a padding pixel


def _blocks(values: np.ndarray, padding: np.ndarray, size: int) -> _Blocks:
    """Statistics of non-overlapping size x size blocks (the remainder is cropped)."""
    h, w = values.shape[0] // size * size, values.shape[1] // size * size
    shape = (h // size, size, w // size, size)
    v = values[:h, :w].reshape(shape)
    means = v.mean(axis=(1, 3))
    variance = np.maximum((v * v).mean(axis=(1, 3)) - means * means, 0.0)
    return _Blocks(
        means,
        np.sqrt(variance),
        v.min(axis=(1, 3)),
        v.max(axis=(1, 3)),
        padding[:h, :w].reshape(shape).any(axis=(1, 3)),
    )


def _border_connected(mask: np.ndarray) -> np.ndarray:
    """The cells of ``mask`` 4-connected to the grid border through ``mask``."""
    reached = np.zeros_like(mask)
    reached[0, :], reached[-1, :], reached[:, 0], reached[:, -1] = (
        mask[0, :],
        mask[-1, :],
        mask[:, 0],
        mask[:, -1],
    )
    while True:
        grown = reached.copy()
        grown[1:, :] |= reached[:-1, :]
        grown[:-1, :] |= reached[1:, :]
        grown[:, 1:] |= reached[:, :-1]
        grown[:, :-1] |= reached[:, 1:]
        grown &= mask
        if np.array_equal(grown, reached):
            return reached
        reached = grown


def _largest_region(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected region of ``mask`` (label propagation, grid-sized loops)."""
    if not mask.any():
        return mask
    big = mask.size + 1
    labels = np.where(mask, np.arange(mask.size).reshape(mask.shape), big)
    while True:
        nxt = labels.copy()
        nxt[1:, :] = np.minimum(nxt[1:, :], labels[:-1, :])
        nxt[:-1, :] = np.minimum(nxt[:-1, :], labels[1:, :])
        nxt[:, 1:] = np.minimum(nxt[:, 1:], labels[:, :-1])
        nxt[:, :-1] = np.minimum(nxt[:, :-1], labels[:, 1:])
        nxt = np.where(mask, nxt, big)
        if np.array_equal(nxt, labels):
            break
        labels = nxt
    ids, counts = np.unique(labels[mask], return_counts=True)
    return labels == ids[np.argmax(counts)]
