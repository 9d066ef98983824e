"""Plain data: agreement profiles, message kinds, bodies and structured problems. No I/O."""
