"""Small apps the fault tests run under real uWSGI (exit-hook probe, spooler, mule)."""
