"""Exposure of a projection radiograph from its header (IEC 62494-1 exposure index).

No pixels needed, but it belongs with the pixel checks: it judges the image as acquired.
A photometric interpretation that contradicts SamplesPerPixel is the fast checks' business
(``pixel.photometric-inconsistent``), not repeated here.
"""

from __future__ import annotations

import math
from typing import Any

from connrad.qc.deep.limits import PixelLimits
from connrad.qc.deep.values import get as _get
from connrad.qc.deep.values import number as _single
from connrad.qc.findings import Finding, fail, warn


def exposure_checks(ds: Any, limits: PixelLimits = PixelLimits()) -> list[Finding]:
    """IEC 62494-1: DI = 10 log10(EI / EI_T); bands after AAPM TG-116.

    |DI| <= 1: as intended. 1 < |DI| <= 3: outside the target range, warn. DI > +3: well
    overexposed, excess dose but readable: warn. DI < -3: well underexposed, too noisy to
    read reliably (TG-116: repeat): fail.
    """
    ei = _single(_get(ds, "ExposureIndex"))
    target = _single(_get(ds, "TargetExposureIndex"))
    di = _single(_get(ds, "DeviationIndex"))
    computed = False
    if di is None and ei is not None and target is not None and ei > 0 and target > 0:
        di, computed = 10 * math.log10(ei / target), True
    if di is None or abs(di) <= limits.deviation_index_warn:
        return []
    data = {
        "deviation_index": round(di, 2),
        "exposure_index": ei,
        "target_exposure_index": target,
        "computed": computed,
    }
    direction = "overexposed" if di > 0 else "underexposed"
    if abs(di) <= limits.deviation_index_action:
        return [
            warn(
                "exposure.deviation-index",
                f"deviation index {di:+.1f}: {direction} (outside +/- "
                f"{limits.deviation_index_warn:g})",
                "DeviationIndex",
                **data,
            )
        ]
    if di > 0:
        return [
            warn(
                "exposure.overexposed",
                f"deviation index {di:+.1f}: markedly overexposed, excess patient dose",
                "DeviationIndex",
                **data,
            )
        ]
    return [
        fail(
            "exposure.underexposed",
            f"deviation index {di:+.1f}: markedly underexposed, the image is likely too "
            "noisy to read",
            "DeviationIndex",
            **data,
        )
    ]
