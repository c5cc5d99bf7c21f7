"""zssrgan."""
