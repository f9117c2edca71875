"""Standing: who receives a response and why, decided by pure rules."""
