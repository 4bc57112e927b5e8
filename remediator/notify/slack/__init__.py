"""notify.slack."""
