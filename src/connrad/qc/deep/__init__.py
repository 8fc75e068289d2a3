"""Deep quality checks: pure functions run as background jobs after an instance is stored.

``geometry`` judges a whole series (completeness, slice spacing, orientation); ``pixels``
judges decoded frames (blank, saturated, CT numbers and noise, exposure index, blur,
display window). Both only return :class:`~connrad.qc.findings.Finding` lists; jobs,
storage and settings are the caller's business.
"""

from connrad.qc.deep.geometry import GeometryLimits, SliceGeometry, series_checks
from connrad.qc.deep.pixels import PixelLimits, image_checks, instance_pixel_checks

__all__ = [
    "GeometryLimits",
    "PixelLimits",
    "SliceGeometry",
    "image_checks",
    "instance_pixel_checks",
    "series_checks",
]
