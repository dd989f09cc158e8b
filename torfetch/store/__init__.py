"""On-disk state: the atomic output file and the remembered log heads."""
