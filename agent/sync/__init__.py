"""agent/sync"""
