"""Recipes: loading, merging, overrides, the recipe schema and its cross-field checks."""
