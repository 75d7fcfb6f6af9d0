"""Training for rebalance-agent: walk-forward torch models exported to ONNX (never imported by the agent)."""
