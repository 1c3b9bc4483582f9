"""meshplan: preview, diff and draw a stack's graph without a cluster or credentials."""
