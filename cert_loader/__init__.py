"""cert_loader: load one district's validated, anonymized data into the CERT stores, all-or-nothing."""

__version__ = "0.1.0"
