"""Backbones and online learners: IQL (and, as the issues land, SAC, DQN, CQL, RND)."""
