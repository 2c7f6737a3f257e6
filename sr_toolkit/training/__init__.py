"""The training engine and what it is made of: losses, the GAN step, schedule, validation, run folders, display."""
