"""Object storage for adapters: a local folder or S3 (any S3-compatible endpoint), and the registry."""
