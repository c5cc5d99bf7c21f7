"""Plain nn.Modules for the networks; no training logic here."""
