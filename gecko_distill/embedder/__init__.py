"""The student: input formatting, encoding, training and evaluation of the embedding model."""
