"""Test doubles of the gateway's own seams, one each (used where the real part is not built)."""
