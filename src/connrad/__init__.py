"""connrad — Connected Radiology: a cloud imaging hub for remote clinics."""

__version__ = "0.1.0"
