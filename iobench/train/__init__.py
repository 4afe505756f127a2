"""Training replay: emulated accelerators fed by reader threads, AU, find-max, checkpoints."""
