"""First-party metrics: importing this package registers them."""
