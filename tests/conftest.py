"""Shared fixtures and helpers of the test suite."""
