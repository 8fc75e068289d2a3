"""Sending stored instances to destinations: DIMSE C-STORE SCU and DICOMweb STOW-RS.

``base`` holds what the outbox uses (``Outgoing``, ``Sent``, ``sender_for``, ``probe``);
``dimse`` and ``dicomweb`` the two protocols. A sender keeps its association or HTTP
connection open across batches and confirms delivery by querying the destination.
"""
