"""Engine and data collector: from camera frames to door unlocks, and frames saved for enrollment."""
