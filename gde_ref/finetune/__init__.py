"""Online fine-tuning on top of a backbone: GDE (Algorithm 1) and the shared loop."""
