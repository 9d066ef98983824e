"""PDF renditions of exchanged documents: the layout (the PAdES signature is crypto.pades)."""
