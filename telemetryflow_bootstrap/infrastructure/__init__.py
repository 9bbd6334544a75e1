"""Infrastructure layer: SDK wiring, exporters and resource detection."""
