"""What every run needs around the training itself: its record on disk (run directory, metadata,
metrics.json), checks before it starts, secrets kept out of its files, checkpoint I/O and contents,
loggers, resume and the DDP world of one sweep job."""
