"""Monthly cost estimates of a stack from its synth record and a dated price table."""
