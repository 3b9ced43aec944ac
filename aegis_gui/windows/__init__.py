"""The tray app's windows. Each takes plain data and emits requests as signals; the
controller runs the work in ops and feeds the results back."""
