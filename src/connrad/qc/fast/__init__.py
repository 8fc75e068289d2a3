"""Fast quality checks: pure functions of one parsed header, run on every instance at ingest.

Input: a data set read with ``pydicom.dcmread(path, defer_size=...)`` (large values may be
deferred; native pixel data is never loaded), its transfer syntax and the file size.
Output: findings with stable codes (docs/qc.md). The checks:

* ``attributes``: Type 1 / Type 2 attributes the IOD requires (policy in its docstring);
* ``uids``: UID syntax and length, at every sequence level;
* ``pixels``: Image Pixel attributes against the stored pixel data, first frame decodable;
* ``charset``: Specific Character Set terms, text decodable under them (strictly);
* ``values``: DA / TM / DT / IS / DS well formed, at every sequence level.

They never raise: a check that breaks on some input reports ``parse.undecodable`` (fail)
and the others still run. A native CT slice header takes well under a millisecond; an
encapsulated instance costs one frame's decoding on top.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from pydicom.dataset import Dataset

from connrad.qc.fast._elements import Walk, walk
from connrad.qc.fast.attributes import check_attributes
from connrad.qc.fast.charset import check_charset
from connrad.qc.fast.pixels import check_pixels
from connrad.qc.fast.uids import check_uids
from connrad.qc.fast.values import check_values
from connrad.qc.findings import Finding, Severity, fail

__all__ = ["FastLimits", "fast_checks"]


@dataclass(frozen=True)
class FastLimits:
    """Thresholds of the fast checks (overridable per site as ``fast.<name>``).

    ``type2_missing_warns``: report a missing Type 2 attribute (warn). Sites whose modalities
    all omit the same ones may turn the noise off.
    ``decode_first_frame``: decode the first frame of encapsulated pixel data; off, only the
    encapsulation's structure is checked (for a gateway that cannot afford the decoding).
    ``max_decode_pixels``: frames with more pixels (Rows x Columns) are not decoded here
    (memory: a crafted header can announce 65535 x 65535); 0 decodes any size.
    ``max_findings_per_code``: findings of one code kept per instance; the rest are counted
    in the last one kept (a broken sequence can hold thousands of bad references).
    """

    type2_missing_warns: bool = True
    decode_first_frame: bool = True
    max_decode_pixels: int = 64 * 1024 * 1024
    max_findings_per_code: int = 10


def fast_checks(
    ds: Dataset,
    *,
    transfer_syntax_uid: str,
    file_size: int | None = None,
    path: Path | None = None,
    limits: FastLimits = FastLimits(),
) -> list[Finding]:
    """All fast findings of one instance, fails and warnings, in check order.

    ``file_size`` (else the size of ``path``) lets the pixel check see a truncated file.
    """
    if file_size is None and path is not None:
        try:
            file_size = os.path.getsize(path)
        except OSError:
            file_size = None
    findings = _guarded(
        "attributes",
        lambda: check_attributes(ds, type2_missing_warns=limits.type2_missing_warns),
    )
    walked = _guarded("elements", lambda: [walk(ds)])
    string_elements = [leaf for w in walked if isinstance(w, Walk) for leaf in w.leaves]
    findings += [finding for finding in walked if isinstance(finding, Finding)]
    findings += [
        fail(
            "parse.undecodable",
            f"the sequence {where} cannot be parsed",
            where.rpartition(".")[2],
            path=where,
        )
        for w in walked
        if isinstance(w, Walk)
        for where in w.unreadable
    ]
    findings += _guarded("uids", lambda: check_uids(string_elements))
    findings += _guarded(
        "pixels",
        lambda: check_pixels(
            ds,
            transfer_syntax_uid=str(transfer_syntax_uid or ""),
            file_size=file_size,
            decode_first_frame=limits.decode_first_frame,
            max_decode_pixels=limits.max_decode_pixels,
        ),
    )
    findings += _guarded("charset", lambda: check_charset(string_elements))
    findings += _guarded("values", lambda: check_values(string_elements))
    return _capped(_deduplicated(findings), limits.max_findings_per_code)


T = TypeVar("T")


def _guarded(check: str, run: Callable[[], list[T]]) -> list[T | Finding]:
    """``run()``; whatever breaks it on this input becomes a finding instead of raising."""
    try:
        return list(run())
    except Exception as exc:
        return [
            fail(
                "parse.undecodable",
                f"the {check} check could not read the data set",
                check=check,
                error=type(exc).__name__,
            )
        ]


def _deduplicated(findings: list[Finding]) -> list[Finding]:
    """A pixel attribute the IOD check already reported missing is not reported twice."""
    reported = {
        f.attribute
        for f in findings
        if f.code in ("attribute.type1-missing", "attribute.type1-empty")
        and f.severity is Severity.FAIL
    }
    return [
        f for f in findings if not (f.code == "pixel.attribute-missing" and f.attribute in reported)
    ]


def _capped(findings: list[Finding], limit: int) -> list[Finding]:
    """At most ``limit`` findings per code and severity; the last kept counts the rest."""
    counts = Counter((f.code, f.severity) for f in findings)
    if limit < 1 or max(counts.values(), default=0) <= limit:
        return findings
    kept: list[Finding] = []
    seen: Counter[tuple[str, Severity]] = Counter()
    for finding in findings:
        key = (finding.code, finding.severity)
        seen[key] += 1
        if seen[key] < limit or counts[key] <= limit:
            kept.append(finding)
        elif seen[key] == limit:
            more = counts[key] - limit
            message = f"{finding.message} (and {more} more like it)"
            kept.append(replace(finding, message=message, data={**finding.data, "more": more}))
    return kept
