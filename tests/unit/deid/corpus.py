"""An adversarial corpus for the de-identification engine: one patient, many hiding places.

Every instance belongs to the same patient (``PATIENT_ID``) and hides that patient's
identity wherever DICOM lets it hide: names three sequence levels deep, Other Patient IDs,
Request Attributes, Original/Modified Attributes, SR content items, private OB values, a
private sequence in Implicit VR (read back as an undefined-length private SQ), overlays and
retired curves, graphic annotation text, free-text descriptions, Korean names in all three
PN component groups (ISO 2022 IR 149 and ISO_IR 192), partial and timezone-qualified dates,
a DICOMDIR and an Encapsulated PDF. SEG, RT Structure Set and Comprehensive SR instances
reference the CT images so that reference integrity can be checked after de-identification.

``build_corpus(directory)`` writes the instances as Part 10 files and returns their paths;
``IDENTIFYING_PATTERNS`` are the byte strings that must not survive anywhere in an output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.fileset import FileSet
from pydicom.sequence import Sequence
from pydicom.uid import (
    ComprehensiveSRStorage,
    CTImageStorage,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    GrayscaleSoftcopyPresentationStateStorage,
    ImplicitVRLittleEndian,
    MRImageStorage,
    RTStructureSetStorage,
    SegmentationStorage,
)

KEY = b"adversarial-corpus-site-key-0001"  # 32 bytes, like a site data key
OTHER_SITE_KEY = b"another-site-entirely-key-000002"

FAMILY = "Zqxwvut"
GIVEN = "Mblrkq"
PATIENT_NAME = f"{FAMILY}^{GIVEN}"
HANGUL = "홍길동"
HANJA = "洪吉洞"
KOREAN_PN = "Hong^Gildong=洪^吉洞=홍^길동"
PATIENT_ID = "PID-77341-XQ"
OTHER_ID = "OPID-99120-QQ"
ACCESSION = "ACC-5519-ZZ"
BIRTH_DATE = "19510203"
INSTITUTION = "Qyrvex General"
STUDY_DATES = ("20230405", "20230410")  # two studies, five days apart

# Original UIDs (under a made-up root; no "2023" digits so date scans stay meaningful).
ROOT = "1.2.826.0.1.3680043.99.7"
STUDY_UIDS = (f"{ROOT}.1", f"{ROOT}.2")
CT_SERIES = f"{ROOT}.1.1"
MR_SERIES = f"{ROOT}.2.1"
DERIVED_SERIES = {"seg": f"{ROOT}.1.5", "rt": f"{ROOT}.1.6", "sr": f"{ROOT}.1.7"}
GSPS_SERIES = f"{ROOT}.1.8"
PDF_SERIES = f"{ROOT}.1.9"
FOR_UID = f"{ROOT}.1.99"
CT_SOPS = (f"{ROOT}.1.1.1", f"{ROOT}.1.1.2")
MR_SOP = f"{ROOT}.2.1.1"
SEG_SOP = f"{ROOT}.1.5.1"
RT_SOP = f"{ROOT}.1.6.1"
SR_SOP = f"{ROOT}.1.7.1"
GSPS_SOP = f"{ROOT}.1.8.1"
PDF_SOP = f"{ROOT}.1.9.1"
ORIGINAL_UIDS = (
    *STUDY_UIDS,
    CT_SERIES,
    MR_SERIES,
    *DERIVED_SERIES.values(),
    GSPS_SERIES,
    PDF_SERIES,
    FOR_UID,
    *CT_SOPS,
    MR_SOP,
    SEG_SOP,
    RT_SOP,
    SR_SOP,
    GSPS_SOP,
    PDF_SOP,
)

PDF_BYTES = (
    b"%PDF-1.4\n1 0 obj << /Title (Report for Zqxwvut Mblrkq PID-77341-XQ) >> endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)
TEXT_WITH_NAME = f"Follow-up for {FAMILY} {GIVEN} ({PATIENT_ID}), {HANGUL}"


def _korean_forms(text: str) -> list[bytes]:
    """UTF-8, EUC-KR (the G1 bytes ISO 2022 IR 149 writes) and 7-bit ISO-2022-KR."""
    forms = [text.encode("utf-8"), text.encode("euc_kr")]
    seven_bit = text.encode("iso2022_kr")
    forms.append(seven_bit[seven_bit.index(b"\x0e") + 1 : seven_bit.rindex(b"\x0f")])
    return forms


IDENTIFYING_PATTERNS: dict[str, list[bytes]] = {
    "family name": [FAMILY.lower().encode()],
    "given name": [GIVEN.lower().encode()],
    "romanized Korean given name": [b"gildong"],
    "patient id": [PATIENT_ID.lower().encode(), b"77341"],
    "other patient id": [OTHER_ID.lower().encode()],
    "accession": [ACCESSION.lower().encode(), b"5519-zz"],
    "birth date": [BIRTH_DATE.encode()],
    "institution": [b"qyrvex"],
    "hangul name": _korean_forms(HANGUL) + _korean_forms("길동"),
    "hanja name": _korean_forms(HANJA) + _korean_forms("吉洞"),
}


def leaks(data: bytes) -> list[str]:
    """The identifying patterns found in ``data`` (ASCII patterns case-insensitively)."""
    lowered = data.lower()
    found = []
    for what, patterns in IDENTIFYING_PATTERNS.items():
        for pattern in patterns:
            haystack = lowered if pattern.isascii() and pattern.islower() else data
            if pattern in haystack:
                found.append(f"{what}: {pattern!r}")
    return found


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    return _item(CodeValue=value, CodingSchemeDesignator=scheme, CodeMeaning=meaning)


def _code_seq(value: str, scheme: str, meaning: str) -> Sequence:
    return Sequence([_code(value, scheme, meaning)])


def _patient_study(ds: Dataset, study: int, *, name: str = PATIENT_NAME) -> None:
    """Patient, study and institution identity shared by every instance."""
    ds.PatientName = name
    ds.PatientID = PATIENT_ID
    ds.IssuerOfPatientID = "QYRVEX-MRN"
    ds.PatientBirthDate = BIRTH_DATE
    ds.PatientSex = "M"
    ds.PatientAge = "095Y"  # over 89: must be capped
    ds.PatientSize = "1.72"
    ds.PatientWeight = "68.5"
    ds.OtherPatientIDs = OTHER_ID
    ds.OtherPatientNames = KOREAN_PN if name == PATIENT_NAME else PATIENT_NAME
    ds.OtherPatientIDsSequence = Sequence(
        [_item(PatientID=OTHER_ID, IssuerOfPatientID="QYRVEX-OLD", TypeOfPatientID="TEXT")]
    )
    ds.StudyInstanceUID = STUDY_UIDS[study]
    ds.StudyDate = STUDY_DATES[study]
    ds.StudyTime = "1011"  # partial TM
    ds.StudyID = "SID-77341"
    ds.AccessionNumber = ACCESSION
    ds.ReferringPhysicianName = f"Dr {FAMILY}^Referrer"
    ds.InstitutionName = INSTITUTION
    ds.InstitutionAddress = "1 Qyrvex Road, Seoul"
    ds.StudyDescription = f"CT head for {FAMILY} {GIVEN}"
    ds.AdditionalPatientHistory = f"{PATIENT_NAME} fell; MRN {PATIENT_ID}; {HANGUL}"
    ds.Manufacturer = "ACME"


def _meta(ds: Dataset, transfer_syntax: str = ExplicitVRLittleEndian) -> None:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.SourceApplicationEntityTitle = "QYRVEX_PACS"


def _pixels(ds: Dataset, rows: int = 4, columns: int = 4) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(rows * columns * 2))
    # Free text inside the otherwise kept Image Pixel / presentation group (0028).
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.WindowCenterWidthExplanation = f"{FAMILY} brain window"


def _request_attributes() -> Sequence:
    """Request Attributes with a person name three sequence levels deep."""
    deepest = _item(PersonName=PATIENT_NAME, ValueType="PNAME")
    protocol = _item(
        ValueType="CONTAINER",
        ConceptNameCodeSequence=_code_seq("121000", "DCM", "Observer"),
        ContentSequence=Sequence([deepest]),
    )
    return Sequence(
        [
            _item(
                AccessionNumber=ACCESSION,
                RequestedProcedureID="RP-77341",
                RequestedProcedureDescription=f"CT for {FAMILY}",
                ScheduledProcedureStepID="SPS-77341",
                ScheduledProcedureStepDescription=f"{GIVEN} {FAMILY} head",
                ReferencedStudySequence=Sequence(
                    [_item(ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1")]
                ),
                ScheduledProtocolCodeSequence=Sequence(
                    [
                        _item(
                            CodeValue="P1",
                            CodingSchemeDesignator="99QYR",
                            CodeMeaning="Head",
                            ProtocolContextSequence=Sequence([protocol]),
                        )
                    ]
                ),
            )
        ]
    )


def _original_attributes() -> Sequence:
    modified = _item(PatientName=f"{FAMILY}^Old", PatientID=PATIENT_ID, OtherPatientIDs=OTHER_ID)
    return Sequence(
        [
            _item(
                ModifiedAttributesSequence=Sequence([modified]),
                AttributeModificationDateTime="20230405101112",
                ModifyingSystem="QYRVEX-RIS",
                SourceOfPreviousValues=INSTITUTION,
                ReasonForTheAttributeModification="COERCE",
            )
        ]
    )


def _adversarial_header(ds: Dataset) -> None:
    """Hiding places that are not specific to one IOD."""
    ds.SeriesDescription = f"Axial {FAMILY}"
    ds.ImageComments = f"Patient {PATIENT_NAME} moved; {HANJA}"
    ds.DerivationDescription = f"{GIVEN}'s recon"
    ds.RequestAttributesSequence = _request_attributes()
    ds.OriginalAttributesSequence = _original_attributes()
    ds.ReferencedPatientSequence = Sequence(
        [
            _item(
                ReferencedSOPClassUID="1.2.840.10008.3.1.2.1.1",
                ReferencedSOPInstanceUID=f"{ROOT}.5",
            )
        ]
    )
    ds.PerformingPhysicianName = f"{FAMILY}^Performer"
    ds.OperatorsName = f"{FAMILY}^Operator"
    # Dates: partial DA (not PS3.5-conformant), DT with and without offset, TM partial.
    ds.AcquisitionDate = "2023"
    ds.AcquisitionTime = "1011"
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = "101112.123"
    ds.AcquisitionDateTime = f"{ds.StudyDate}101112.123+0900"
    ds.InstanceCreationDate = ds.StudyDate
    ds.TimezoneOffsetFromUTC = "+0900"
    # Private blocks: an OB holding the name bytes and a private LO.
    block = ds.private_block(0x0009, "QYRVEX PRIVATE", create=True)
    block.add_new(0x01, "OB", f"{PATIENT_NAME}\0{PATIENT_ID}".encode() + HANGUL.encode("utf-8"))
    block.add_new(0x02, "LO", f"{FAMILY} {ACCESSION}")
    # Overlay (60xx) with a description naming the patient, and a retired curve (50xx).
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60000022, "LO", f"{FAMILY} overlay")
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60003000, "OW", FAMILY.encode() + b"\0")
    ds.add_new(0x60004000, "LT", f"{PATIENT_NAME} comment")
    ds.add_new(0x50000005, "US", 1)
    ds.add_new(0x50000010, "US", 2)
    ds.add_new(0x50000022, "LO", f"{FAMILY} ECG curve")
    ds.add_new(0x50003000, "OW", PATIENT_ID.encode())


def _ct(index: int) -> Dataset:
    ds = Dataset()
    korean = index == 1
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 149"] if korean else "ISO_IR 192"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = CT_SOPS[index]
    _patient_study(ds, 0, name=KOREAN_PN if korean else PATIENT_NAME)
    ds.SeriesInstanceUID = CT_SERIES
    ds.FrameOfReferenceUID = FOR_UID
    ds.PositionReferenceIndicator = ""
    ds.Modality = "CT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [-100.0, -100.0, float(index * 5)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = "5"
    ds.KVP = "120"
    ds.XRayTubeCurrent = 250
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.StationName = "CT-ROOM-3"  # kept by Retain Device Identity
    _pixels(ds)
    _adversarial_header(ds)
    if korean:
        ds.StudyDescription = f"두부 CT {HANGUL}"
        ds.ImageComments = f"{HANJA} {HANGUL}"
        # Private sequence: the file is Implicit VR, so on read it is an undefined-length
        # sequence of an unknown (private) tag.
        inner = _item(PatientName=PATIENT_NAME, PatientID=PATIENT_ID)
        block = ds.private_block(0x0011, "QYRVEX SEQ", create=True)
        inner.is_undefined_length_sequence_item = True
        block.add_new(0x01, "SQ", Sequence([inner]))
        block[0x01].is_undefined_length = True
    _meta(ds, ImplicitVRLittleEndian if korean else ExplicitVRLittleEndian)
    return ds


def _mr() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = MR_SOP
    _patient_study(ds, 1, name=KOREAN_PN)
    ds.SeriesInstanceUID = MR_SERIES
    ds.FrameOfReferenceUID = f"{ROOT}.2.99"
    ds.Modality = "MR"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M"]
    ds.ScanningSequence = "SE"
    ds.SequenceVariant = "NONE"
    ds.RepetitionTime = "500"
    ds.EchoTime = "15"
    ds.MagneticFieldStrength = "3"
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = "3"
    ds.SeriesDescription = f"T1 {HANGUL}"
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = "0930"
    ds.AcquisitionDateTime = "20230410"  # DT with day precision
    _pixels(ds)
    _meta(ds)
    return ds


def _references(series: str, sops: tuple[str, ...], sop_class: str = CTImageStorage) -> Sequence:
    return Sequence(
        [
            _item(
                SeriesInstanceUID=series,
                ReferencedInstanceSequence=Sequence(
                    [
                        _item(ReferencedSOPClassUID=sop_class, ReferencedSOPInstanceUID=s)
                        for s in sops
                    ]
                ),
            )
        ]
    )


def _derived_common(ds: Dataset, sop_class: str, sop: str, series: str, modality: str) -> None:
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop
    _patient_study(ds, 0)
    ds.SeriesInstanceUID = series
    ds.Modality = modality
    ds.SeriesNumber = 100
    ds.InstanceNumber = 1
    ds.ContentDate = STUDY_DATES[0]
    ds.ContentTime = "1200"
    ds.SeriesDescription = f"{modality} of {FAMILY}"


def _seg() -> Dataset:
    ds = Dataset()
    _derived_common(ds, SegmentationStorage, SEG_SOP, DERIVED_SERIES["seg"], "SEG")
    ds.FrameOfReferenceUID = FOR_UID
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.ContentLabel = "ZQXWVUT_SEG"
    ds.ContentDescription = f"Liver of {FAMILY}"
    ds.ContentCreatorName = f"{FAMILY}^Annotator"
    ds.SegmentationType = "BINARY"
    ds.ReferencedSeriesSequence = _references(CT_SERIES, CT_SOPS)
    ds.DimensionOrganizationSequence = Sequence([_item(DimensionOrganizationUID=f"{ROOT}.77")])
    ds.DimensionIndexSequence = Sequence(
        [
            _item(
                DimensionOrganizationUID=f"{ROOT}.77",
                DimensionIndexPointer=0x0062000B,
                FunctionalGroupPointer=0x0062000A,
            )
        ]
    )
    ds.SegmentSequence = Sequence(
        [
            _item(
                SegmentNumber=1,
                SegmentLabel=f"{FAMILY} liver",
                SegmentDescription=f"drawn on {GIVEN}",
                SegmentAlgorithmType="MANUAL",
                SegmentedPropertyCategoryCodeSequence=_code_seq(
                    "123037004", "SCT", "Anatomical Structure"
                ),
                SegmentedPropertyTypeCodeSequence=_code_seq("10200004", "SCT", "Liver"),
                RecommendedDisplayCIELabValue=[32768, 32768, 32768],
            )
        ]
    )
    ds.SharedFunctionalGroupsSequence = Sequence(
        [
            _item(
                PixelMeasuresSequence=Sequence(
                    [_item(PixelSpacing=[0.5, 0.5], SliceThickness="5")]
                ),
                PlaneOrientationSequence=Sequence(
                    [_item(ImageOrientationPatient=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0])]
                ),
            )
        ]
    )
    frames = []
    for index, sop in enumerate(CT_SOPS):
        source = _item(
            ReferencedSOPClassUID=CTImageStorage,
            ReferencedSOPInstanceUID=sop,
            PurposeOfReferenceCodeSequence=_code_seq("121322", "DCM", "Source image"),
        )
        frames.append(
            _item(
                DerivationImageSequence=Sequence(
                    [
                        _item(
                            SourceImageSequence=Sequence([source]),
                            DerivationCodeSequence=_code_seq("113076", "DCM", "Segmentation"),
                        )
                    ]
                ),
                FrameContentSequence=Sequence([_item(DimensionIndexValues=[1, index + 1])]),
                PlanePositionSequence=Sequence(
                    [_item(ImagePositionPatient=[-100.0, -100.0, float(index * 5)])]
                ),
                SegmentIdentificationSequence=Sequence([_item(ReferencedSegmentNumber=1)]),
            )
        )
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.NumberOfFrames = 2
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 4
    ds.Columns = 4
    ds.BitsAllocated = 1
    ds.BitsStored = 1
    ds.HighBit = 0
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "00"
    ds.PixelData = b"\x0f\x00\xf0\x00"
    _meta(ds)
    return ds


def _rtstruct() -> Dataset:
    ds = Dataset()
    _derived_common(ds, RTStructureSetStorage, RT_SOP, DERIVED_SERIES["rt"], "RTSTRUCT")
    ds.StructureSetLabel = f"{FAMILY} plan"
    ds.StructureSetName = f"{GIVEN} structures"
    ds.StructureSetDate = STUDY_DATES[0]
    ds.StructureSetTime = "1300"
    contour_images = Sequence(
        [_item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=CT_SOPS[0])]
    )
    ds.ReferencedFrameOfReferenceSequence = Sequence(
        [
            _item(
                FrameOfReferenceUID=FOR_UID,
                RTReferencedStudySequence=Sequence(
                    [
                        _item(
                            ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1",
                            ReferencedSOPInstanceUID=STUDY_UIDS[0],
                            RTReferencedSeriesSequence=Sequence(
                                [
                                    _item(
                                        SeriesInstanceUID=CT_SERIES,
                                        ContourImageSequence=contour_images,
                                    )
                                ]
                            ),
                        )
                    ]
                ),
            )
        ]
    )
    ds.StructureSetROISequence = Sequence(
        [
            _item(
                ROINumber=1,
                ReferencedFrameOfReferenceUID=FOR_UID,
                ROIName=f"GTV {FAMILY}",
                ROIDescription=f"{GIVEN}'s tumour",
                ROIGenerationAlgorithm="MANUAL",
            )
        ]
    )
    contour = _item(
        ContourImageSequence=Sequence(
            [_item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=CT_SOPS[0])]
        ),
        ContourGeometricType="CLOSED_PLANAR",
        NumberOfContourPoints=3,
        ContourNumber=1,
        ContourData=[-10.0, -10.0, 0.0, 10.0, -10.0, 0.0, 0.0, 10.0, 0.0],
    )
    ds.ROIContourSequence = Sequence(
        [
            _item(
                ReferencedROINumber=1,
                ROIDisplayColor=[255, 0, 0],
                ContourSequence=Sequence([contour]),
            )
        ]
    )
    ds.RTROIObservationsSequence = Sequence(
        [
            _item(
                ObservationNumber=1,
                ReferencedROINumber=1,
                RTROIInterpretedType="GTV",
                ROIInterpreter=f"{FAMILY}^Physicist",
            )
        ]
    )
    ds.ApprovalStatus = "UNAPPROVED"
    _meta(ds)
    return ds


def _content(
    value_type: str, code: tuple[str, str, str], rel: str = "CONTAINS", **more: object
) -> Dataset:
    return _item(
        RelationshipType=rel,
        ValueType=value_type,
        ConceptNameCodeSequence=_code_seq(*code),
        **more,
    )


def _sr() -> Dataset:
    ds = Dataset()
    _derived_common(ds, ComprehensiveSRStorage, SR_SOP, DERIVED_SERIES["sr"], "SR")
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED"
    ds.VerifyingObserverSequence = Sequence(
        [
            _item(
                VerifyingObserverName=f"{FAMILY}^Verifier",
                VerifyingOrganization=INSTITUTION,
                VerificationDateTime=f"{STUDY_DATES[0]}1500",
                VerifyingObserverIdentificationCodeSequence=Sequence(),
            )
        ]
    )
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = _code_seq("126000", "DCM", "Imaging Measurement Report")
    ds.ContinuityOfContent = "SEPARATE"
    ds.ContentTemplateSequence = Sequence(
        [_item(MappingResource="DCMR", TemplateIdentifier="1500")]
    )
    measurement = _content(
        "NUM",
        ("410668003", "SCT", "Length"),
        MeasuredValueSequence=Sequence(
            [
                _item(
                    NumericValue="12.5",
                    MeasurementUnitsCodeSequence=_code_seq("mm", "UCUM", "millimeter"),
                )
            ]
        ),
    )
    image = _content(
        "IMAGE",
        ("121112", "DCM", "Source of Measurement"),
        rel="INFERRED FROM",
        ReferencedSOPSequence=Sequence(
            [_item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=CT_SOPS[0])]
        ),
    )
    measurement.ContentSequence = Sequence([image])
    # A name three container levels deep.
    deep_name = _content(
        "PNAME", ("121008", "DCM", "Person Observer Name"), PersonName=PATIENT_NAME
    )
    level2 = _content(
        "CONTAINER", ("125007", "DCM", "Measurement Group"), ContinuityOfContent="SEPARATE"
    )
    level2.ContentSequence = Sequence([deep_name])
    level1 = _content(
        "CONTAINER", ("111028", "DCM", "Image Library"), ContinuityOfContent="SEPARATE"
    )
    level1.ContentSequence = Sequence([level2])
    ds.ContentSequence = Sequence(
        [
            _content(
                "PNAME",
                ("121008", "DCM", "Person Observer Name"),
                rel="HAS OBS CONTEXT",
                PersonName=KOREAN_PN,
            ),
            _content(
                "DATE",
                ("121130", "DCM", "Subject Birth Date"),
                rel="HAS OBS CONTEXT",
                Date=BIRTH_DATE,
            ),
            _content(
                "DATETIME",
                ("111526", "DCM", "DateTime Started"),
                DateTime=f"{STUDY_DATES[0]}101112.123+0900",
            ),
            _content(
                "UIDREF",
                ("110180", "DCM", "Study Instance UID"),
                rel="HAS OBS CONTEXT",
                UID=STUDY_UIDS[0],
            ),
            _content("TEXT", ("121071", "DCM", "Finding"), TextValue=TEXT_WITH_NAME),
            measurement,
            level1,
        ]
    )
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence(
        [
            _item(
                StudyInstanceUID=STUDY_UIDS[0],
                ReferencedSeriesSequence=Sequence(
                    [
                        _item(
                            SeriesInstanceUID=CT_SERIES,
                            ReferencedSOPSequence=Sequence(
                                [
                                    _item(
                                        ReferencedSOPClassUID=CTImageStorage,
                                        ReferencedSOPInstanceUID=CT_SOPS[0],
                                    )
                                ]
                            ),
                        )
                    ]
                ),
            )
        ]
    )
    _meta(ds)
    return ds


def _gsps() -> Dataset:
    ds = Dataset()
    _derived_common(ds, GrayscaleSoftcopyPresentationStateStorage, GSPS_SOP, GSPS_SERIES, "PR")
    ds.ContentLabel = "NOTE"
    ds.ContentDescription = f"Arrow for {FAMILY}"
    ds.ContentCreatorName = f"{FAMILY}^Annotator"
    ds.PresentationCreationDate = STUDY_DATES[0]
    ds.PresentationCreationTime = "1400"
    ds.ReferencedSeriesSequence = Sequence(
        [
            _item(
                SeriesInstanceUID=CT_SERIES,
                ReferencedImageSequence=Sequence(
                    [
                        _item(
                            ReferencedSOPClassUID=CTImageStorage,
                            ReferencedSOPInstanceUID=CT_SOPS[0],
                        )
                    ]
                ),
            )
        ]
    )
    ds.GraphicAnnotationSequence = Sequence(
        [
            _item(
                ReferencedImageSequence=Sequence(
                    [
                        _item(
                            ReferencedSOPClassUID=CTImageStorage,
                            ReferencedSOPInstanceUID=CT_SOPS[0],
                        )
                    ]
                ),
                GraphicLayer="LAYER1",
                TextObjectSequence=Sequence(
                    [
                        _item(
                            AnchorPointAnnotationUnits="PIXEL",
                            UnformattedTextValue=f"{PATIENT_NAME} {PATIENT_ID} {HANGUL}",
                            AnchorPoint=[1.0, 1.0],
                            AnchorPointVisibility="Y",
                        )
                    ]
                ),
                GraphicObjectSequence=Sequence(
                    [
                        _item(
                            GraphicAnnotationUnits="PIXEL",
                            GraphicDimensions=2,
                            NumberOfGraphicPoints=2,
                            GraphicData=[0.0, 0.0, 3.0, 3.0],
                            GraphicType="POLYLINE",
                        )
                    ]
                ),
            )
        ]
    )
    ds.GraphicLayerSequence = Sequence([_item(GraphicLayer="LAYER1", GraphicLayerOrder=1)])
    _meta(ds)
    return ds


def _pdf() -> Dataset:
    ds = Dataset()
    _derived_common(ds, EncapsulatedPDFStorage, PDF_SOP, PDF_SERIES, "DOC")
    ds.ConversionType = "WSD"
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = f"Report {FAMILY} {GIVEN}"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = PDF_BYTES
    ds.EncapsulatedDocumentLength = len(PDF_BYTES)
    _meta(ds)
    return ds


@dataclass(frozen=True)
class Corpus:
    """The written files by role; ``dicomdir`` is the FileSet's DICOMDIR."""

    files: dict[str, Path]
    dicomdir: Path


def datasets() -> dict[str, Dataset]:
    """Every corpus instance by role (fresh objects on every call)."""
    return {
        "ct1": _ct(0),
        "ct2_korean_implicit": _ct(1),
        "mr_korean_utf8": _mr(),
        "seg": _seg(),
        "rtstruct": _rtstruct(),
        "sr": _sr(),
        "gsps": _gsps(),
        "pdf": _pdf(),
    }


def build_corpus(directory: Path) -> Corpus:
    """Write every instance as a Part 10 file, then a DICOMDIR over the images."""
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    fileset = FileSet()
    for role, ds in datasets().items():
        path = directory / f"{role}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files[role] = path
        if role in ("ct1", "mr_korean_utf8", "sr"):
            fileset.add(path)
    media = directory / "media"
    fileset.write(media)
    return Corpus(files=files, dicomdir=media / "DICOMDIR")
