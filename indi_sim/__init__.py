"""indi_sim"""
