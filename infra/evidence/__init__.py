"""``sovml evidence``: the control catalogue, the checks run on a record, the evidence pack."""
