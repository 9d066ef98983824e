"""The node's keys: the key store, generations and their schedule, the KEK ring, PKCS#11 tokens."""
