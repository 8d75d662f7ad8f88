"""Face recognition: detector + embedder backends, the open-set gallery, its store and HTTP API."""
