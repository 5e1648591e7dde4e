"""Real-browser tests of cookiegate's banner (Playwright + Debian's Chromium)."""
