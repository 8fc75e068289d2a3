"""DICOMweb routes: STOW-RS, QIDO-RS, WADO-RS and WADO-URI (thin: they call archive/)."""
