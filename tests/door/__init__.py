"""Tests of the Door API, its relay, signatures, audit and clients."""
