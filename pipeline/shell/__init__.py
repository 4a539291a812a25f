"""The imperative shell: one run (``batch``), the hydrator loop, signals and logs. Wires sources, steps and sinks."""
