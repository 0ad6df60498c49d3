"""Small helpers shared across Plait."""
