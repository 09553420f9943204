"""APScheduler wiring."""
