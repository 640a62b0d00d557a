"""Browser tests: Playwright driving Chromium against a real `herald serve`."""
