"""The one place that lists what survives de-identification although Table E.1-1 does not say K.

Everything public that Table E.1-1 does not name is removed (deny by default, PS3.15 E.1.1
Notes 1 and 4: the table is not exhaustive). The attributes below are kept because the
object is not valid or not usable without them and they carry no identity; those in
``REPLACE_KEYWORDS`` are free text that must stay present and get a neutral value. A table row
always wins over this list (``test_keep_list_is_disjoint_from_table`` checks it).
"""

from __future__ import annotations

from pydicom.datadict import DicomDictionary, tag_for_keyword

# Whole groups kept, unless the table names the tag: Image Pixel and presentation (0028,
# PS3.3 C.7.6.3) and Pixel Data (7FE0). The pixels themselves are not cleaned here.
KEEP_GROUPS: dict[int, str] = {
    0x0028: "Image Pixel / presentation description (PS3.3 C.7.6.3, C.11)",
    0x7FE0: "Pixel Data and its float/double variants",
}
# Free text inside the kept groups is NOT kept: Window Center & Width Explanation, LUT
# Explanation, Pixel Data Provider URL, Frame of Interest Description... are operator-typed
# and were found carrying the patient's name (adversarial corpus). Coded LO values that
# only name a unit or LUT kind stay.
FREE_TEXT_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
CODED_TEXT_IN_KEPT_GROUPS = frozenset({"RescaleType", "ModalityLUTType"})

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
    "ReferencedSeriesSequence": "Common Instance Reference (SEG, SR, PR); UIDs inside remapped",
    "ReferencedInstanceSequence": "Common Instance Reference items; UIDs inside remapped",
    "ReferencedSOPSequence": "SR references (IMAGE/COMPOSITE items, evidence); UIDs remapped",
    "CurrentRequestedProcedureEvidenceSequence": "SR Document Type 1C; only UIDs inside",
    "PertinentOtherEvidenceSequence": "SR Document Type 1C; only UIDs inside",
    "PurposeOfReferenceCodeSequence": "a code, no identity",
    "DerivationImageSequence": "Enhanced / SEG derivation; UIDs inside remapped",
    "DerivationCodeSequence": "a code, no identity",
    # Multi-frame functional groups (PS3.3 C.7.6.16): geometry and frame indexing only.
    "SharedFunctionalGroupsSequence": "Multi-frame Functional Groups Type 1/2",
    "PerFrameFunctionalGroupsSequence": "Multi-frame Functional Groups Type 1",
    "FrameContentSequence": "frame indexing",
    "DimensionIndexValues": "frame indexing",
    "StackID": "frame indexing",
    "InStackPositionNumber": "frame indexing",
    "PlanePositionSequence": "geometry",
    "PlaneOrientationSequence": "geometry",
    "DimensionOrganizationSequence": "Multi-frame Dimension Type 1 (its UID is remapped)",
    "DimensionIndexSequence": "Multi-frame Dimension Type 1",
    "DimensionIndexPointer": "a tag, no identity",
    "FunctionalGroupPointer": "a tag, no identity",
    "DimensionOrganizationType": "enumerated",
    # Segmentation (PS3.3 A.51, C.8.20). Segment Label is free text: see REPLACE_KEYWORDS.
    "SegmentationType": "Segmentation Image Type 1",
    "SegmentationFractionalType": "Segmentation Image Type 1C",
    "MaximumFractionalValue": "Segmentation Image Type 1C",
    "SegmentsOverlap": "Segmentation Image Type 3, enumerated",
    "SegmentSequence": "Segmentation Image Type 1",
    "SegmentNumber": "Segment Description Type 1",
    "SegmentAlgorithmType": "Segment Description Type 1 (enumerated)",
    "SegmentedPropertyCategoryCodeSequence": "Segment Description Type 1 (a code)",
    "SegmentedPropertyTypeCodeSequence": "Segment Description Type 1 (a code)",
    "SegmentedPropertyTypeModifierCodeSequence": "a code",
    "AnatomicRegionSequence": "a code",
    "AnatomicRegionModifierSequence": "a code",
    "RecommendedDisplayCIELabValue": "a colour",
    "RecommendedDisplayGrayscaleValue": "a grey level",
    "SegmentIdentificationSequence": "per-frame segment reference",
    "AlgorithmFamilyCodeSequence": "a code",
    # RT Structure Set (PS3.3 A.19, C.8.8.5/6/8). ROI Name has a table row (Z, C).
    "ReferencedFrameOfReferenceSequence": "Structure Set Type 3; UIDs inside remapped",
    "RTReferencedStudySequence": "Structure Set; UIDs inside remapped",
    "RTReferencedSeriesSequence": "Structure Set; UIDs inside remapped",
    "ContourImageSequence": "references to images; UIDs inside remapped",
    "StructureSetROISequence": "Structure Set Type 1",
    "ROINumber": "Structure Set Type 1",
    "ROIGenerationAlgorithm": "enumerated",
    "ROIContourSequence": "ROI Contour Type 1",
    "ReferencedROINumber": "ROI Contour / Observations Type 1",
    "ROIDisplayColor": "a colour",
    "ContourSequence": "ROI Contour Type 2",
    "ContourNumber": "ordering only",
    "ContourGeometricType": "enumerated",
    "NumberOfContourPoints": "count",
    "ContourData": "geometry (patient coordinates)",
    "RTROIObservationsSequence": "RT ROI Observations Type 1",
    "ObservationNumber": "RT ROI Observations Type 1",
    "RTROIInterpretedType": "enumerated",
    "ApprovalStatus": "enumerated",
    # SR Document Content (PS3.3 C.17.3): the tree structure and coded/numeric values.
    # Text Value, Person Name, dates and UIDs have their own rules (table or REPLACE).
    "ValueType": "SR content item Type 1",
    "RelationshipType": "SR content item Type 1",
    "ConceptNameCodeSequence": "SR content item Type 1C (a code)",
    "ConceptCodeSequence": "CODE content item (a code)",
    "ContinuityOfContent": "CONTAINER Type 1",
    "ContentTemplateSequence": "template identification",
    "TemplateIdentifier": "template identification",
    "MeasuredValueSequence": "NUM content item Type 2",
    "NumericValue": "a measurement",
    "FloatingPointValue": "a measurement",
    "MeasurementUnitsCodeSequence": "a code",
    "NumericValueQualifierCodeSequence": "a code",
    "ReferencedContentItemIdentifier": "by-reference relationship (positions)",
    "CompletionFlag": "SR Document General Type 1",
    "VerificationFlag": "SR Document General Type 1",
    "PreliminaryFlag": "enumerated",
    "GraphicType": "SCOORD / graphic object Type 1",
    "GraphicData": "coordinates",
    # Presentation State graphics (PS3.3 C.10.5); the text value is in REPLACE_KEYWORDS.
    "GraphicLayer": "links annotations to layers (a short CS label)",
    "GraphicLayerSequence": "Graphic Layer Type 1",
    "GraphicLayerOrder": "ordering only",
    "TextObjectSequence": "Graphic Annotation item",
    "GraphicObjectSequence": "Graphic Annotation item",
    "AnchorPointAnnotationUnits": "enumerated",
    "BoundingBoxAnnotationUnits": "enumerated",
    "AnchorPoint": "coordinates",
    "AnchorPointVisibility": "enumerated",
    "BoundingBoxTopLeftHandCorner": "coordinates",
    "BoundingBoxBottomRightHandCorner": "coordinates",
    "BoundingBoxTextHorizontalJustification": "enumerated",
    "GraphicAnnotationUnits": "enumerated",
    "GraphicDimensions": "count",
    "NumberOfGraphicPoints": "count",
    "GraphicFilled": "enumerated",
    # Encapsulated Document (PS3.3 C.24.2); the document itself is D in the table.
    "MIMETypeOfEncapsulatedDocument": "Encapsulated Document Type 1 (a media type)",
    # Attributes this engine writes (PS3.15 E.1.1)
    "PatientIdentityRemoved": "set to YES by this engine",
    "DeidentificationMethod": "written by this engine",
    "DeidentificationMethodCodeSequence": "written by this engine (CID 7050)",
}


# Type 1/2 free text the table does not name: the element stays (the object stays valid
# and usable) but its value is replaced (Clean, PS3.15 E.1.1 C: "values of similar
# meaning known not to contain identifying information"). ``_walk`` derives a neutral
# value where one exists (Segment Label from the segment's property code); else a dummy.
# Not here: SR Text Value (0040,A160) stays removed (deny by default, as before): a TEXT
# item keeps its relationship and concept name, a dummy text would say nothing more.
REPLACE_KEYWORDS: dict[str, str] = {
    "SegmentLabel": "Segment Description Type 1: free text (the code keeps the meaning)",
    "SegmentAlgorithmName": "Segment Description Type 1C: free text",
    "AlgorithmName": "Algorithm Identification Type 1: free text",
    "ContentLabel": "Content Identification Type 1: free text (CS)",
    "ContentDescription": "Content Identification Type 2: free text",
    "UnformattedTextValue": "Text Object Type 1C: free annotation text",
    "DocumentTitle": "Encapsulated Document Type 2: free text",
}


def _keep_tags(keywords: dict[str, str] = KEEP_KEYWORDS) -> dict[int, str]:
    tags: dict[int, str] = {}
    for keyword, reason in keywords.items():
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise ValueError(f"Keep-list keyword {keyword!r} is not in the PS3.6 dictionary")
        tags[tag] = reason
    return tags


KEEP_TAGS: dict[int, str] = _keep_tags()
REPLACE_TAGS: dict[int, str] = _keep_tags(REPLACE_KEYWORDS)
# Free-text attributes of the kept groups (from the PS3.6 dictionary), removed.
GROUP_TEXT_EXCEPTIONS: frozenset[int] = frozenset(
    tag
    for tag, (vr, _vm, _name, _retired, keyword) in DicomDictionary.items()
    if (tag >> 16) in KEEP_GROUPS
    and vr in FREE_TEXT_VRS
    and keyword not in CODED_TEXT_IN_KEPT_GROUPS
)


def is_kept(tag: int) -> bool:
    """True when a tag the table does not name must survive (see module docstring)."""
    if tag in KEEP_TAGS:
        return True
    return (tag >> 16) in KEEP_GROUPS and tag not in GROUP_TEXT_EXCEPTIONS


def is_replaced(tag: int) -> bool:
    """True for unnamed free text that must stay present with a neutral value."""
    return tag in REPLACE_TAGS
