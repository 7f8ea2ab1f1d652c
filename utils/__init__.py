"""The Sim2Word engine: CAMs, counterfactual maps, erasing, data, records."""
