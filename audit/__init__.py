"""audit: fairness and robustness audits of CLIP-like zero-shot classifiers."""

__version__ = "0.1.0"
