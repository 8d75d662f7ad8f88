"""Tests of the engine and the data collector."""
