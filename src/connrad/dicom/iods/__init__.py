"""DICOM PS3.3 IOD module tables: attribute Types per SOP Class, for de-identification and QC."""

from connrad.dicom.iods.tables import (
    TYPES,
    Attribute,
    Iod,
    Requirement,
    attribute_type,
    iod_for,
    iod_name,
    known_sop_classes,
    modules,
    required_attributes,
    tag_for,
    type_of_for,
)

__all__ = [
    "TYPES",
    "Attribute",
    "Iod",
    "Requirement",
    "attribute_type",
    "iod_for",
    "iod_name",
    "known_sop_classes",
    "modules",
    "required_attributes",
    "tag_for",
    "type_of_for",
]
