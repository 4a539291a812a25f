"""Pure steps: frames in, frames out. No I/O, no sinks, no sources, no shell; only the contracts below them."""
