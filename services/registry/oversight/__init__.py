"""What the coordinating desk may see: metadata of cases and fan-outs, never disclosed data."""
