"""DLI / HPC boost medical-necessity CDS Hooks service."""

__version__ = "0.1.0"
