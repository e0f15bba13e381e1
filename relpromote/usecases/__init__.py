"""What each command does, composed from the core and the adapters; usable from Python without the CLI."""
