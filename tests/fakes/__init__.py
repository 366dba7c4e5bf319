"""Fakes at the hardware boundary only (NVML); everything else in the tests is real."""
