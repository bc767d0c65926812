"""Evidence archiver for law-enforcement body-camera recorders."""

__version__ = "0.1.0"
