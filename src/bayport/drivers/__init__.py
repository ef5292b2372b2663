"""Provisioning drivers behind one interface: local (embedded clusters), heat, kubeconfig."""
