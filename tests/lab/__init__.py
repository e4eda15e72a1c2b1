"""Tests of `mesh-push lab` (most need root)."""
