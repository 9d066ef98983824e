"""The demo: four bodies on loopback (DEMO keys, NOT FOR PRODUCTION)."""
