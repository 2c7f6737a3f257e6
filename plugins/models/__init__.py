"""First-party models: importing this package registers them."""
