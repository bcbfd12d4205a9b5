"""The showcase behind ``make demo``: every capability end to end on the embedded defaults."""
