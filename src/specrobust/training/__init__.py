"""Adversarial training: objectives (natural, PGD-AT, TRADES, MART), SAR and AWP, weight
averaging, the loop, run directories."""
