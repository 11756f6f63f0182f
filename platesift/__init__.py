"""platesift: first-stage video filter for license-plate pipelines on edge hardware."""

__version__ = "0.1.0"
__all__ = ["__version__"]
