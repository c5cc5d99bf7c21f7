"""Training loops; they report through callbacks and never log anywhere themselves."""
