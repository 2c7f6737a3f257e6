"""sr-toolkit: train, evaluate and compare image super-resolution and restoration networks."""

__version__ = "0.1.0"
