"""Generation: model sourcing and loading, prompts, decoding, backends, embedders and NLI."""
