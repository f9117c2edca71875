"""Evidence: signed records of every state change, recall and the end of a disclosure's life."""
