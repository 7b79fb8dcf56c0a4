"""The Textual app. No torch: it reads runs.db and starts workers as processes."""
