"""metaprod.services"""
