"""Tests of the jobs layer: retention policies, job locks, the scheduler."""
