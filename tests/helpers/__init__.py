"""What several test files share: running tunelab, fault and probe callbacks, task batches."""
