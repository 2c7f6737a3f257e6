"""Running a trained model on images: upscaling, exact tiling."""
