"""Platform adapters: one module per platform behind the interface in `base`."""
