"""agent/sequencer"""
