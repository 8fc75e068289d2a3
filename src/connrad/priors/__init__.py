"""Prior studies: earlier studies of a new study's patient, fetched from the site's PACS.

A radiologist reads a study against the patient's earlier ones. When a study arrives, a job
asks the site's own (trusted) PACS for the patient's studies, picks the relevant ones,
retrieves them through the one ingest pipeline (so they are de-identified under the same
pseudonym as the new study) and links them, for the viewer to show side by side.
"""
