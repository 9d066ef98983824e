"""Tests of gateway.rules: calendars, deadlines, agreement in force, reservations."""
