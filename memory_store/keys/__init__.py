"""Keys: envelope encryption (envelope), where KEKs live (provider), each user's data key
(keyring), and what a memory's ciphertext holds (payload). The wrapped keys' SQL is in
storage/keystore.py."""
