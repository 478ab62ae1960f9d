"""qualflow: a self-hosted hub connecting a Qualtrics account to a research or CX stack."""

__version__ = "0.1.0"
