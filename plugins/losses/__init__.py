"""First-party losses: importing this package registers them."""
