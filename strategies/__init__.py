"""Hypothesis strategies for dynverify (spectra, rotations, planted functions, ...)."""
