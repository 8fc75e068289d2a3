"""The one place that lists what survives de-identification although Table E.1-1 does not say K.

Everything public that Table E.1-1 does not name is removed (deny by default, PS3.15 E.1.1
Notes 1 and 4: the table is not exhaustive). The attributes below are kept because the
object is not valid or not usable without them and they carry no identity. A table row
always wins over this list (``test_keep_list_is_disjoint_from_table`` checks it).
"""

from __future__ import annotations

from pydicom.datadict import tag_for_keyword

# Whole groups kept, unless the table names the tag: Image Pixel and presentation (0028,
# PS3.3 C.7.6.3) and Pixel Data (7FE0). The pixels themselves are not cleaned here.
KEEP_GROUPS: dict[int, str] = {
    0x0028: "Image Pixel / presentation description (PS3.3 C.7.6.3, C.11)",
    0x7FE0: "Pixel Data and its float/double variants",
}

# keyword -> why it is kept.
KEEP_KEYWORDS: dict[str, str] = {
    # SOP Common and character repertoire (PS3.3 C.12.1)
    "SOPClassUID": "identifies the IOD; a well-known UID, never remapped",
    "SpecificCharacterSet": "needed to decode every text value (PS3.5 6.1)",
    "InstanceNumber": "ordering within the series, no identity",
    # Series / equipment structure
    "Modality": "General Series Type 1",
    "SeriesNumber": "General Series Type 2, ordering only",
    "AcquisitionNumber": "ordering only",
    "PatientPosition": "needed to interpret geometry",
    "Laterality": "clinical meaning, no identity",
    "ImageLaterality": "clinical meaning, no identity",
    "ConversionType": "SC Equipment Type 1",
    "PresentationIntentType": "DX Series Type 1",
    # Image
    "ImageType": "General Image / CT / MR Type 1",
    "PatientOrientation": "General Image Type 2C",
    "LossyImageCompression": "must be kept once lossy compressed (PS3.3 C.7.6.1.1.5)",
    "LossyImageCompressionRatio": "documents lossy history",
    "LossyImageCompressionMethod": "documents lossy history",
    "NumberOfFrames": "Multi-frame Type 1",
    "FrameIncrementPointer": "Multi-frame Type 1",
    # Frame of reference and image plane (PS3.3 C.7.6.2)
    "PositionReferenceIndicator": "Frame of Reference Type 2 (anatomical, no identity)",
    "ImagePositionPatient": "Image Plane Type 1",
    "ImageOrientationPatient": "Image Plane Type 1",
    "SliceThickness": "Image Plane Type 2",
    "SliceLocation": "Image Plane Type 3, geometry only",
    "SpacingBetweenSlices": "geometry only",
    # CT / MR / DX acquisition parameters needed to read the image
    "KVP": "CT Image Type 2",
    "ScanOptions": "technique only",
    "DataCollectionDiameter": "technique only",
    "ReconstructionDiameter": "technique only",
    "ConvolutionKernel": "technique only",
    "GantryDetectorTilt": "geometry (tilted series)",
    "ExposureTime": "technique only",
    "XRayTubeCurrent": "technique only",
    "Exposure": "technique only",
    "ScanningSequence": "MR Image Type 1",
    "SequenceVariant": "MR Image Type 1",
    "MRAcquisitionType": "MR Image Type 2",
    "RepetitionTime": "MR Image Type 2C",
    "EchoTime": "MR Image Type 2",
    "EchoTrainLength": "MR Image Type 2",
    "InversionTime": "MR Image Type 2C",
    "MagneticFieldStrength": "technique only",
    "FlipAngle": "technique only",
    "ImagingFrequency": "technique only",
    "ImagedNucleus": "technique only",
    "EchoNumbers": "technique only",
    "NumberOfAverages": "technique only",
    "PixelBandwidth": "technique only",
    # Codes: items of kept code sequences must stay valid (PS3.3 8.8, Table 8.8-1)
    "CodeValue": "Code Sequence Macro Type 1C",
    "CodingSchemeDesignator": "Code Sequence Macro Type 1C",
    "CodingSchemeVersion": "Code Sequence Macro Type 1C",
    "CodeMeaning": "Code Sequence Macro Type 1",
    "LongCodeValue": "Code Sequence Macro Type 1C",
    "URNCodeValue": "Code Sequence Macro Type 1C",
    "ContextIdentifier": "Code Sequence Macro Type 3",
    "ContextUID": "well-known context group UID",
    "MappingResource": "Code Sequence Macro Type 1C",
    # References: the UIDs inside are remapped, the class UID is kept
    "ReferencedSOPClassUID": "SOP Class of a reference; a well-known UID",
    "ReferencedSOPClassUIDInFile": "SOP Class in a DICOMDIR record; a well-known UID",
    "ReferencedTransferSyntaxUIDInFile": "Transfer Syntax in a DICOMDIR record",
    "RelatedGeneralSOPClassUID": "a well-known SOP Class UID",
    "OriginalSpecializedSOPClassUID": "a well-known SOP Class UID",
    "CodingSchemeUID": "identifies a coding scheme, not a person",
    "MappingResourceUID": "identifies a mapping resource, not a person",
    "ReferencedFrameNumber": "position within a referenced instance",
    "ReferencedSegmentNumber": "position within a referenced instance",
    # Attributes this engine writes (PS3.15 E.1.1)
    "PatientIdentityRemoved": "set to YES by this engine",
    "DeidentificationMethod": "written by this engine",
    "DeidentificationMethodCodeSequence": "written by this engine (CID 7050)",
}


def _keep_tags() -> dict[int, str]:
    tags: dict[int, str] = {}
    for keyword, reason in KEEP_KEYWORDS.items():
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise ValueError(f"Keep-list keyword {keyword!r} is not in the PS3.6 dictionary")
        tags[tag] = reason
    return tags


KEEP_TAGS: dict[int, str] = _keep_tags()


def is_kept(tag: int) -> bool:
    """True when a tag the table does not name must survive (see module docstring)."""
    return tag in KEEP_TAGS or (tag >> 16) in KEEP_GROUPS
