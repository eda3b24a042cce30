"""Helpers shared by the test suites (real services, free ports); not a test module."""
