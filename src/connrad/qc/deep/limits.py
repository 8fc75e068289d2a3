"""Thresholds of the deep checks, with their defaults and why.

Frozen dataclasses: settings override single fields (``dataclasses.replace``) and a job
gets one consistent set of limits for its whole run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GeometryLimits:
    """Thresholds of :func:`connrad.qc.deep.geometry.series_checks`."""

    #: a step at least this many times the typical step, with regular neighbours, is a gap
    gap_ratio: float = 1.5
    #: steps within this fraction of the typical step are regular ...
    spacing_tolerance_ratio: float = 0.05
    #: ... or within this many mm (rounding of decimal-string positions)
    spacing_tolerance_mm: float = 0.05
    #: positions closer than this (mm, along the normal) are the same position
    duplicate_tolerance_mm: float = 0.01
    #: slice normals further apart than this (degrees) are different orientations
    orientation_tolerance_deg: float = 1.0
    #: PixelSpacing values differing by more than this fraction are different
    pixel_spacing_tolerance: float = 0.001
    #: modalities whose series are stacks of slices
    modalities: frozenset[str] = frozenset({"CT", "MR", "PT", "NM"})


@dataclass(frozen=True)
class PixelLimits:
    """Thresholds of the pixel, CT, exposure and display checks."""

    #: blank when the std of stored values is below this fraction of the stored range
    #: (2**BitsStored - 1, BitsStored capped at 16) ...
    blank_std_fraction: float = 1e-4
    #: ... or below this many stored units, whichever is larger
    blank_std_floor: float = 1.0
    #: saturated when more than this fraction of pixels sit at the largest representable value
    saturated_fraction: float = 0.05
    #: modalities whose histogram is judged for saturation (not OT/SC/SM test patterns)
    saturation_modalities: frozenset[str] = frozenset(
        {"CT", "MR", "PT", "NM", "DX", "CR", "MG", "RF", "XA", "IO", "PX", "RG", "DR"}
    )
    #: expected CT number of air and the tolerance before ``ct.air-hu-off``
    ct_air_hu: float = -1000.0
    ct_air_tolerance_hu: float = 50.0
    #: air is looked for within this of ``ct_air_hu`` (wider would take lung for air)
    ct_air_search_hu: float = 100.0
    #: tolerance of the water CT number (ACR CT accreditation: 0 +/- 7 HU)
    ct_water_tolerance_hu: float = 7.0
    #: noise (HU standard deviation) above which ``ct.noisy`` warns
    ct_noise_sd_max_hu: float = 30.0
    #: block means in this HU range are soft tissue for the noise estimate
    ct_soft_tissue_hu: tuple[float, float] = (-50.0, 150.0)
    #: ... and whose every pixel is within this margin of that range (no air/bone edge)
    ct_soft_tissue_margin_hu: float = 250.0
    #: measure water when one connected region of uniform blocks with |mean| <= this ...
    ct_water_search_hu: float = 30.0
    #: ... covers at least this fraction of the frame's blocks ...
    ct_water_min_area: float = 0.05
    #: ... and its block means vary by no more than this (HU, beyond what noise explains)
    ct_water_max_inhomogeneity_hu: float = 2.0
    #: fewest blocks for an air or soft-tissue measurement
    ct_min_blocks: int = 4
    #: |deviation index| above this warns ``exposure.deviation-index`` ...
    deviation_index_warn: float = 1.0
    #: ... above this: ``exposure.overexposed`` (warn) / ``exposure.underexposed`` (fail)
    deviation_index_action: float = 3.0
    #: modalities judged for blur (projection radiography)
    blur_modalities: frozenset[str] = frozenset({"DX", "CR", "MG"})
    #: blurred when std(Laplacian) / (p99 - p1) of the frame (<= 512 px) is below this
    blur_min_sharpness: float = 0.002
    #: not images to judge: segmentations, dose grids, slide tiles (empty glass is normal)
    skip_modalities: frozenset[str] = frozenset(
        {"SEG", "RTDOSE", "RTSTRUCT", "RTPLAN", "REG", "SR", "KO", "PR", "SM"}
    )
