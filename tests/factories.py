"""Small, valid DICOM instances and multipart bodies built in the tests."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from connrad.dicomweb.multipart import multipart_body


def make_dataset(**attributes: Any) -> Dataset:
    """An 8x8 CT image; keyword arguments override or add attributes."""
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "P-1"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyDate = "20260101"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC1"
    ds.StudyID = "S1"
    ds.ReferringPhysicianName = "Ref^Doc"
    ds.Modality = "CT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = (np.arange(64, dtype=np.uint16) * 60).tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def to_bytes(ds: Dataset) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def make_instance(**attributes: Any) -> bytes:
    return to_bytes(make_dataset(**attributes))


BOUNDARY = "connrad-test-boundary"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def stow_body(*parts: bytes, content_type: str = "application/dicom") -> bytes:
    return b"".join(
        multipart_body([({"Content-Type": content_type}, [p]) for p in parts], BOUNDARY)
    )


def parse_multipart(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    from connrad.dicomweb.multipart import Event, MultipartParser, parse_media_type

    parser = MultipartParser(parse_media_type(content_type).params["boundary"])
    parts: list[tuple[dict[str, str], bytes]] = []
    headers: dict[str, str] = {}
    chunks: list[bytes] = []
    for event, payload in parser.feed(body):
        if event is Event.PART_BEGIN:
            headers, chunks = payload, []  # type: ignore[assignment]
        elif event is Event.DATA:
            chunks.append(payload)  # type: ignore[arg-type]
        else:
            parts.append((headers, b"".join(chunks)))
    parser.close()
    return parts
