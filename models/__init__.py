"""Face networks used by Sim2Word: architectures, a registry and safe loaders."""
