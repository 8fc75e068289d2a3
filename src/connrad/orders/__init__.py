"""Imaging orders (requested procedures) of a site, and the Modality Worklist they feed.

An order carries the patient's real identity, because the modality must show the real name
for the technologist to pick the right patient; that identity is sealed in the identity
vault, and only what does not identify anyone is kept in clear.
"""
