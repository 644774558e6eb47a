"""agent/stacking"""
