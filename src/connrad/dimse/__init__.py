"""The DIMSE door: classic DICOM networking (this issue: identification and C-ECHO; C-STORE,
C-FIND, C-MOVE, C-GET and the rest come with the DIMSE gateway)."""
