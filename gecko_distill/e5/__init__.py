"""The E5-mistral mode: synthetic triplets written from scratch, and a decoder LLM as the embedder."""
