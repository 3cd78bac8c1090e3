"""The control API and the dashboard: `botwarden serve`."""
