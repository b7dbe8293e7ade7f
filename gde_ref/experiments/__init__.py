"""Recipes, one per paper experiment, each callable from the CLI (pretraining, the maze, fine-tuning)."""
