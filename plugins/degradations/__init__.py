"""First-party degradations: importing this package registers them."""
