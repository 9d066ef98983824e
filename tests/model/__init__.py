"""Tests of gateway.model: the protocol's plain values."""
