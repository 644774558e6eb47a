"""agent/sequencer/states"""
