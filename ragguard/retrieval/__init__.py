"""Retrieval: reading sources, chunking, the FAISS index and its ANN variants, and search."""
