"""Retention: how long each recording must be kept (classes, holds), what is due, and the two-person purge."""
