"""agent/devices"""
