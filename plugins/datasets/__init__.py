"""First-party datasets: importing this package registers them."""
