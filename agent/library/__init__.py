"""agent/library"""
