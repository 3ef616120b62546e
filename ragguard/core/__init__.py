"""The pure core: result types, interfaces, clustering, voting, contradiction detectors, metrics.

Nothing here imports torch, transformers, faiss or sentence-transformers; every
function takes plain texts and arrays, so it is tested on hand-written vectors.
"""
